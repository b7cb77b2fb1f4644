//! The public page in a real browser: headless Chromium loads `/`, finds the league table and
//! the map, opens a problem page; then, driven over the DevTools protocol at 1280 and 360 px,
//! runs axe-core (WCAG 2.1 A/AA) on each page, checks none scrolls sideways, and leaves
//! full-page screenshots under `target/test-artifacts/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use shared::testing::WebhookReceiver;

use crate::browser;
use crate::publication::{acknowledge, rectify, report, verdict, wait_public, wait_status};
use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium with a fresh profile and the given arguments; answers its stdout.
async fn chromium(args: &[&str]) -> String {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: deploy/test installs it (apt-get install -y chromium)"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let mut command = tokio::process::Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("Chromium finished within 90 s")
        .expect("Chromium runs");
    assert!(output.status.success(), "Chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn dom(url: &str) -> String {
    chromium(&["--dump-dom", url]).await
}

async fn screenshot(url: &str, name: &str) -> PathBuf {
    let file = browser::artifacts().join(name);
    let _ = std::fs::remove_file(&file);
    chromium(&[&format!("--screenshot={}", file.display()), "--window-size=1280,2000", url]).await;
    let png = std::fs::read(&file).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", file.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{} is not a real PNG", file.display());
    file
}

/// The `href` of the first link whose attribute `class` is `class`.
fn first_link(dom: &str, class: &str) -> Option<String> {
    let at = dom.find(&format!("class=\"{class}\" href=\""))?;
    let rest = &dom[at + class.len() + 15..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_page_works_in_a_real_browser() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let first = report(&stack, XINGTAI, Some("130502"), "某某铸造厂", &["scattered_polluting", "coal_boiler"]).await;
    let second = report(&stack, HANDAN, None, "某某化工厂", &["vocs"]).await;
    for id in first.iter().chain(&second) {
        wait_public(&stack, id).await;
    }
    acknowledge(&stack, &first[0], XINGTAI).await;
    rectify(&stack, &first[0], XINGTAI).await;
    verdict(&stack, &first[0], "rectified", "ok").await;
    wait_status(&stack, &first[0], "closed").await;
    let (status, _) = send(
        &stack,
        "PUT",
        "publication",
        &format!("/v1/admin/problems/{}/typical-case", first[1]),
        Some(&stack.admin()),
        Some(json!({ "narrative": "燃煤锅炉未按期淘汰，仍在使用。" })),
    )
    .await;
    assert_eq!(status, 200);
    let base = stack.url("publication");

    // The front page after load: the league table of the 39 cities and the map.
    let front = dom(&format!("{base}/")).await;
    assert!(front.contains("<table id=\"league\""), "no league table:\n{front}");
    assert_eq!(front.matches("<tr data-city=").count(), 39, "a league row per key city");
    assert!(front.contains("<svg id=\"map\""), "no map");
    assert_eq!(front.matches("<circle").count(), 39, "a circle per key city on the map");
    assert!(front.contains("<svg id=\"chart\"") && front.contains("class=\"found\""), "no chart");
    assert!(front.contains("燃煤锅炉未按期淘汰"), "the typical case leads the page");
    assert!(front.contains("lang=\"zh-CN\""));

    // Open a problem page from the front page's own link.
    let link = first_link(&front, "problem").expect("a link to a problem page");
    let page = dom(&format!("{base}{link}")).await;
    assert!(page.contains("<table id=\"history\""), "no history:\n{page}");
    assert!(page.contains("id=\"problem-title\""));

    // The search form narrows to a city and a site; English on the switch.
    let search = dom(&format!("{base}/?city={HANDAN}&q=%E5%8C%96%E5%B7%A5")).await;
    let results = &search[search.find("id=\"latest\"").expect("the results")..];
    assert!(results.contains("某某化工厂") && !results.contains("某某铸造厂"), "search by city and site");
    let english = dom(&format!("{base}/?lang=en")).await;
    assert!(english.contains("City league table") && english.contains("Xingtai") && english.contains("lang=\"en\""));

    let front_png = screenshot(&format!("{base}/"), "publication-front.png").await;
    let problem_png = screenshot(&format!("{base}/problems/{}", first[0]), "publication-problem.png").await;
    screenshot(&format!("{base}/?lang=en"), "publication-front-en.png").await;
    eprintln!("screenshots: {} {}", front_png.display(), problem_png.display());

    // Held to WCAG 2.1 A/AA by axe-core, and usable on a phone: no page scrolls sideways at
    // 360 px. Screenshots of each at both widths.
    // And the page a handover notice's receipt link opens, for the official who got it.
    let receipt = shared::testing::eventually("a notice with its receipt link", WAIT, || async {
        receiver.received().into_iter().find_map(|r| r.json()["receipt_url"].as_str().map(str::to_string))
    })
    .await;
    let pages = [
        ("front", format!("{base}/")),
        ("front-en", format!("{base}/?lang=en")),
        ("problem", format!("{base}/problems/{}", first[0])),
        ("receipt", receipt),
    ];
    for width in [1280, 360] {
        let chromium = browser::Chromium::launch(width).await;
        for (name, url) in &pages {
            let page = chromium.open(url).await;
            let violations = browser::axe_violations(&page).await;
            assert!(violations.is_empty(), "axe-core on {url} at {width} px: {violations:#?}");
            let (page_width, window) = browser::widths(&page).await;
            assert!(page_width <= window, "{url} scrolls sideways at {width} px: {page_width} > {window}");
            browser::screenshot(&page, browser::artifacts().join(format!("publication-{name}-{width}.png"))).await;
        }
        chromium.close().await;
    }
}

/// A problem page checks its own record in the reader's browser: its script fetches the signed
/// checkpoint, the problem's entries and their inclusion proofs and verifies them with WebCrypto
/// (Ed25519, SHA-256), and says "verified: entries … of a log of …". When a stored node on the
/// proofs' paths is altered, the same page says "not verified".
#[tokio::test(flavor = "multi_thread")]
async fn a_problem_page_checks_its_own_record_in_the_browser() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let ids = report(&stack, XINGTAI, None, "某某焦化厂", &["vocs", "dust", "coal_boiler"]).await;
    for id in &ids {
        wait_public(&stack, id).await;
    }
    acknowledge(&stack, &ids[0], XINGTAI).await;
    wait_status(&stack, &ids[0], "acknowledged").await;
    // Every entry of the problem under a signed checkpoint.
    let entries: Vec<i64> = shared::testing::eventually("the problem's entries in a checkpoint", WAIT, || async {
        let (_, problem) = get(&stack, "publication", &format!("/v1/problems/{}", ids[0]), None).await;
        let (_, checkpoint) = get(&stack, "publication", "/v1/chain/checkpoint", None).await;
        let size = checkpoint["tree_size"].as_i64()?;
        let entries: Vec<i64> =
            problem["history"].as_array()?.iter().filter_map(|h| h["entry_index"].as_i64()).collect();
        (entries.len() >= 3 && entries.iter().all(|e| *e < size)).then_some(entries)
    })
    .await;
    let base = stack.url("publication");
    let page_url = format!("{base}/problems/{}?lang=en", ids[0]);

    let chromium = browser::Chromium::launch(1280).await;
    let page = chromium.open(&page_url).await;
    browser::until(&page, "document.getElementById('record-check').dataset.result !== 'checking'", "the check").await;
    let said = browser::text(&page, "#record-check [data-part=result]").await;
    let listed = entries.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ");
    assert!(said.starts_with(&format!("verified: entries {listed} of a log of ")), "{said}");
    let state = browser::evaluate(&page, "document.getElementById('record-check').dataset.result").await;
    assert_eq!(state, "verified", "{said}");
    browser::screenshot(&page, browser::artifacts().join("publication-record-verified.png")).await;
    let chinese = chromium.open(&format!("{base}/problems/{}", ids[0])).await;
    browser::until(&chinese, "document.getElementById('record-check').dataset.result === 'verified'", "verified").await;
    assert!(browser::text(&chinese, "#record-check [data-part=result]").await.starts_with("已核验"));

    // Alter every stored node but the problem's first leaf: the proofs the server now gives no
    // longer lead to the signed root, and the page says so.
    let pool = stack.db.pool().await;
    let altered =
        sqlx::query("UPDATE publication.log_nodes SET hash = sha256(hash) WHERE NOT (level = 0 AND idx = $1)")
            .bind(entries[0])
            .execute(&pool)
            .await
            .expect("alter the stored nodes");
    assert!(altered.rows_affected() > 0);
    let page = chromium.open(&page_url).await;
    browser::until(&page, "document.getElementById('record-check').dataset.result !== 'checking'", "the check").await;
    let said = browser::text(&page, "#record-check [data-part=result]").await;
    assert!(said.starts_with(&format!("not verified: entry {} does not match", entries[0])), "{said}");
    browser::screenshot(&page, browser::artifacts().join("publication-record-not-verified.png")).await;
    chromium.close().await;
}
