//! Headless Chromium driven over the DevTools protocol, the way a person's browser would load
//! a page at a given window width: for what the command line cannot do (run axe-core in the
//! page, measure it, screenshot the whole page at a phone's width).

use std::path::{Path, PathBuf};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::StreamExt;
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The WCAG levels the people's pages are held to.
const AXE_TAGS: &str = "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']";

pub struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// A fresh headless Chromium whose window is `width` CSS pixels wide (a phone at 360).
    pub async fn launch(width: u32) -> Self {
        assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: deploy/test installs it");
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .no_sandbox()
            .user_data_dir(profile.path())
            .viewport(Viewport {
                width,
                height: 900,
                device_scale_factor: Some(1.0),
                emulating_mobile: width < 600,
                is_landscape: false,
                has_touch: width < 600,
            })
            .window_size(width, 900)
            .args(["--disable-gpu", "--hide-scrollbars", "--disable-background-networking", "--disable-quic"])
            .build()
            .expect("browser config");
        let (browser, mut events) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Self { browser, handler, _profile: profile }
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn open(&self, url: &str) -> Page {
        let opened = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            let page = self.browser.new_page(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
            page.wait_for_navigation().await.expect("the page loads");
            page
        });
        opened.await.unwrap_or_else(|_| panic!("{url} did not open within 60 s"))
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

pub async fn evaluate(page: &Page, expression: &str) -> Value {
    let params = EvaluateParams::builder()
        .expression(expression)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .expect("evaluate params");
    page.evaluate_expression(params).await.expect("the script runs").into_value().expect("a JSON value")
}

/// axe-core's violations of WCAG 2.1 A and AA on the page: its id, impact and the offending
/// elements. axe-core comes from the npm registry (deploy/test puts it in `.tools`).
pub async fn axe_violations(page: &Page) -> Vec<Value> {
    let path = std::env::var("AXE_CORE_JS").unwrap_or_else(|_| ".tools/axe-core/package/axe.min.js".into());
    let axe = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("axe-core at {path}: {e} (deploy/test fetches it with npm)"));
    evaluate(page, &axe).await;
    let report = evaluate(
        page,
        &format!(
            "axe.run(document, {{ runOnly: {{ type: 'tag', values: {AXE_TAGS} }} }}).then(r => JSON.stringify(r.violations.map(v => ({{ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html) }}))))"
        ),
    )
    .await;
    serde_json::from_str(report.as_str().expect("axe's report")).expect("axe's report is JSON")
}

/// How wide the page is against how wide the window is (CSS pixels): wider means it scrolls
/// sideways.
pub async fn widths(page: &Page) -> (i64, i64) {
    let v = evaluate(page, "[document.documentElement.scrollWidth, document.documentElement.clientWidth]").await;
    (v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0))
}

/// Saves the whole page as a PNG.
pub async fn screenshot(page: &Page, file: PathBuf) {
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &file)
        .await
        .unwrap_or_else(|e| panic!("screenshot {}: {e}", file.display()));
}

/// Waits until `condition` (a JavaScript expression) is true in the page, or panics with `what`.
pub async fn until(page: &Page, condition: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let expression = format!("(() => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }})()");
        // While the page navigates its old context is gone: that is "not yet".
        let params = EvaluateParams::builder().expression(expression).return_by_value(true).build().expect("params");
        let answer = page.evaluate_expression(params).await.ok().and_then(|r| r.into_value::<Value>().ok());
        if answer == Some(Value::Bool(true)) {
            return;
        }
        let url = page.url().await.ok().flatten().unwrap_or_default();
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what} (at {url})");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Clicks the element the way a person does (a mouse press at its centre).
pub async fn click(page: &Page, selector: &str) {
    let clicked = async {
        page.find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("no {selector} on the page: {e}"))
            .click()
            .await
            .map(|_| ())
            .unwrap_or_else(|e| panic!("cannot click {selector}: {e}"))
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), clicked)
        .await
        .unwrap_or_else(|_| panic!("clicking {selector} took over 30 s"));
}

/// Clicks a submit button and waits for the page its form leads to, marked by `arrived` (a
/// JavaScript condition).
pub async fn submit(page: &Page, selector: &str, arrived: &str) {
    evaluate(page, "window.__before_submit = true").await;
    click(page, selector).await;
    until(
        page,
        &format!("window.__before_submit === undefined && document.readyState === 'complete' && ({arrived})"),
        arrived,
    )
    .await;
}

/// Types into a field: key by key, or (Chinese) committed as an input method commits it.
pub async fn fill(page: &Page, selector: &str, text: &str) {
    let field = page.find_element(selector).await.unwrap_or_else(|e| panic!("no {selector}: {e}"));
    tokio::time::timeout(std::time::Duration::from_secs(30), field.click())
        .await
        .unwrap_or_else(|_| panic!("focusing {selector} took over 30 s"))
        .expect("focus the field");
    if text.is_ascii() {
        field.type_str(text).await.unwrap_or_else(|e| panic!("cannot type into {selector}: {e}"));
    } else {
        use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
        page.execute(InsertTextParams::new(text)).await.unwrap_or_else(|e| panic!("cannot type into {selector}: {e}"));
    }
}

/// Chooses an option of a `<select>` (as picking it from the list would).
pub async fn choose(page: &Page, selector: &str, value: &str) {
    let script = format!(
        "(() => {{ const s = document.querySelector({selector:?}); s.value = {value:?}; s.dispatchEvent(new Event('change', {{ bubbles: true }})); return s.value; }})()"
    );
    assert_eq!(evaluate(page, &script).await, Value::String(value.into()), "{selector} has no option {value}");
}

/// Attaches a file to a file input, as the file chooser would.
pub async fn attach(page: &Page, selector: &str, file: &Path) {
    use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
    let input = page.find_element(selector).await.unwrap_or_else(|e| panic!("no {selector}: {e}"));
    let params = SetFileInputFilesParams::builder()
        .files(vec![file.display().to_string()])
        .backend_node_id(input.backend_node_id)
        .build()
        .expect("file input params");
    page.execute(params).await.expect("attach the file");
}

/// The text of the first element matching `selector` (empty when there is none).
pub async fn text(page: &Page, selector: &str) -> String {
    let script =
        format!("(() => {{ const e = document.querySelector({selector:?}); return e ? e.innerText : ''; }})()");
    evaluate(page, &script).await.as_str().unwrap_or_default().to_string()
}

/// Goes to `url` in the same tab (keeping its cookies) and waits for it to load.
pub async fn go(page: &Page, url: &str) {
    tokio::time::timeout(std::time::Duration::from_secs(60), page.goto(url))
        .await
        .unwrap_or_else(|_| panic!("{url} did not load within 60 s"))
        .unwrap_or_else(|e| panic!("cannot go to {url}: {e}"));
    until(page, "document.readyState === 'complete'", url).await;
}

/// Where the people's pages' screenshots go: `target/test-artifacts/`.
pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}
