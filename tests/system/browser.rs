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
        let page = self.browser.new_page(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
        page.wait_for_navigation().await.expect("the page loads");
        page
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

async fn evaluate(page: &Page, expression: &str) -> Value {
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
