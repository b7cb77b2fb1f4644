//! The workbench in headless Chromium, against the real stack at its one origin: the campaign
//! office invites a local-government official by name; the e-mail reaches a real SMTP receiver;
//! its link signs the official in; the official acknowledges the sheet (签收) and reports the
//! rectification with a photo; a verifier, invited the same way, sees that photo and closes the
//! problem; the public page shows it closed. Also: a second use of a sign-in link is refused, a
//! write without the CSRF token changes nothing, signing out ends the session, a revoked person
//! is signed out on their next request, and every screen passes axe-core (WCAG 2.1 A/AA) without
//! scrolling sideways.

use std::path::Path;
use std::time::Duration;

use chromiumoxide::page::Page;
use serde_json::{Value, json};
use shared::testing::{SmtpReceiver, Stack, StackOptions, WebhookReceiver, eventually};

use crate::browser::{self, Chromium};
use crate::publication::{report, wait_status};
use crate::support::*;

/// The sign-in link in the newest e-mail to `address`, read the way a mail client reads it.
/// A stack (with the one origin when `workbench`) whose notices go by e-mail to a test SMTP
/// receiver, and the campaign set up: what the workbench and field-app tests start from.
pub(crate) async fn mailing_stack(workbench: bool) -> (SmtpReceiver, Stack, WebhookReceiver) {
    let smtp = SmtpReceiver::start().await;
    let mut options = StackOptions { workbench, ..StackOptions::default() };
    options.env.push(("SKYLEDGER__NOTIFICATION__SMTP__HOST".into(), smtp.host.clone()));
    options.env.push(("SKYLEDGER__NOTIFICATION__SMTP__PORT".into(), smtp.port.to_string()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    (smtp, stack, receiver)
}

pub(crate) async fn sign_in_link(smtp: &SmtpReceiver, address: &str) -> String {
    eventually(&format!("the sign-in e-mail to {address}"), WAIT, || async {
        smtp.mails().into_iter().rev().filter(|m| m.to.iter().any(|t| t.contains(address))).find_map(|mail| {
            let message = mail_parser::MessageParser::default().parse(&mail.data)?;
            let body = message.body_text(0)?.into_owned();
            let at = body.find("http")?;
            let link: String = body[at..].chars().take_while(|c| !c.is_whitespace()).collect();
            link.contains("/sign-in/").then_some(link)
        })
    })
    .await
}

/// Axe-core finds no A/AA violation and the page does not scroll sideways; a screenshot is kept.
async fn check_page(page: &Page, name: &str) {
    let violations = browser::axe_violations(page).await;
    let url = page.url().await.ok().flatten().unwrap_or_default();
    assert!(violations.is_empty(), "axe-core on {name} ({url}): {violations:#?}");
    let (page_width, window) = browser::widths(page).await;
    assert!(page_width <= window, "{name} scrolls sideways: {page_width} > {window}");
    browser::screenshot(page, browser::artifacts().join(format!("workbench-{name}.png"))).await;
}

/// Opens the sign-in link and presses the button: the browser is then signed in.
async fn sign_in(chromium: &Chromium, link: &str, name: &str) -> Page {
    let page = chromium.open(link).await;
    check_page(&page, &format!("{name}-sign-in")).await;
    browser::submit(&page, "#sign-in", "document.querySelector('#who') !== null").await;
    page
}

/// The session cookie a browser holds for the origin (HttpOnly: only the DevTools see it).
async fn session_cookie(page: &Page) -> String {
    let cookies = page.get_cookies().await.expect("the page's cookies");
    let cookie = cookies.into_iter().find(|c| c.name == shared::auth::SESSION_COOKIE).expect("a session cookie");
    assert!(cookie.http_only, "the session cookie is HttpOnly");
    assert!(format!("{:?}", cookie.same_site).contains("Strict"), "the session cookie is SameSite=Strict");
    cookie.value
}

/// A session that ended is refused by a service too: each hears of it on the revocation stream
/// within moments (the workbench's own check is at once).
async fn refused_everywhere(stack: &Stack, origin: &str, cookie: &str, path: &str) {
    eventually(&format!("{path} to refuse the ended session"), Duration::from_secs(10), || async {
        let answer = stack
            .http
            .get(format!("{origin}{path}"))
            .header("cookie", format!("{}={cookie}", shared::auth::SESSION_COOKIE))
            .send()
            .await
            .ok()?;
        (answer.status() == 401).then_some(())
    })
    .await;
}

async fn ledger_entry(stack: &Stack, id: &str) -> Value {
    let (status, body) = get(stack, "assignment", &format!("/v1/problems/{id}"), Some(&stack.admin())).await;
    assert_eq!(status, 200, "{body}");
    body["entry"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn people_work_the_lifecycle_through_the_workbench() {
    let (smtp, stack, _receiver) = mailing_stack(true).await;
    let problem = report(&stack, XINGTAI, Some("130502"), "某某铸造厂", &["scattered_polluting"]).await.remove(0);
    let sheet = eventually("the problem handed over on a sheet", WAIT, || async {
        let (status, body) = get(&stack, "assignment", &format!("/v1/problems/{problem}"), Some(&stack.admin())).await;
        (status == 200).then(|| body["entry"]["handover_no"].as_str().map(str::to_string)).flatten()
    })
    .await;
    let origin = stack.origin();

    // The campaign office's first person is invited by a machine token (`skyledger invite`).
    let (status, office) = post(
        &stack,
        "notification",
        "/v1/people",
        &stack.admin(),
        json!({ "name": "李明", "role": "admin", "email": "office@campaign.example.cn" }),
    )
    .await;
    assert_eq!(status, 201, "{office}");
    let office_link = sign_in_link(&smtp, "office@campaign.example.cn").await;
    assert!(office_link.starts_with(&format!("{origin}/sign-in/")), "{office_link}");
    let desk = Chromium::launch(1280).await;
    let office = sign_in(&desk, &office_link, "office").await;
    assert!(browser::text(&office, "#who").await.contains("李明"));
    check_page(&office, "office-home").await;
    assert!(browser::text(&office, "#quality").await.contains(FINDER), "the team's figures of the round");

    // The campaign set-up, read back and edited on the office's screen.
    browser::go(&office, &format!("{origin}/workbench/campaign")).await;
    assert!(browser::text(&office, "#rounds").await.contains(ROUND), "the round is read back");
    assert!(browser::text(&office, "#rounds").await.contains(FINDER), "with its teams");
    check_page(&office, "office-campaign").await;
    browser::fill(&office, "input[name=city]", XINGTAI).await;
    browser::fill(&office, "input[name=ministry_department]", "大气环境司").await;
    browser::fill(&office, "input[name=affiliated_unit]", "环境规划院").await;
    browser::fill(&office, "input[name=provincial_department]", "河北省生态环境厅").await;
    browser::submit(
        &office,
        "form[action='/workbench/campaign/package'] button",
        "document.querySelector('#flash') !== null",
    )
    .await;
    assert!(browser::text(&office, "#packages").await.contains("环境规划院"), "the package is saved and read back");

    // The office invites the official of Xingtai from its screen.
    browser::go(&office, &format!("{origin}/workbench/people")).await;
    check_page(&office, "office-people").await;
    browser::fill(&office, "#invite-name", "王芳").await;
    browser::choose(&office, "#invite-role", "local_gov").await;
    browser::fill(&office, "#invite-jurisdiction", XINGTAI).await;
    browser::fill(&office, "#invite-email", "wangfang@xingtai.example.cn").await;
    browser::submit(&office, "#invite", "document.querySelector('#flash') !== null").await;
    assert!(browser::text(&office, "main").await.contains("王芳"));

    // The official signs in on a phone; the link opens a page and only its button signs in.
    let official_link = sign_in_link(&smtp, "wangfang@xingtai.example.cn").await;
    let phone = Chromium::launch(360).await;
    let official = sign_in(&phone, &official_link, "official").await;
    assert!(browser::text(&official, "#who").await.contains("王芳"));
    check_page(&official, "official-home").await;
    assert!(browser::text(&official, "main").await.contains(&sheet), "the sheet waits for 签收");

    // A second use of the link is refused.
    let code = official_link.rsplit('/').next().expect("a code");
    let again = stack
        .http
        .post(format!("{origin}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("code={code}"))
        .send()
        .await
        .expect("sign in again");
    assert_eq!(again.status(), 403, "a sign-in link works once");
    assert!(again.text().await.unwrap_or_default().contains("used"), "the page says the link was used");

    // A write that does not carry the CSRF token changes nothing, through the page or the API.
    let cookie = session_cookie(&official).await;
    let forged = stack
        .http
        .post(format!("{origin}/workbench/handovers/{sheet}/acknowledge"))
        .header("cookie", format!("{}={cookie}", shared::auth::SESSION_COOKIE))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=forged")
        .send()
        .await
        .expect("forged POST");
    assert_eq!(forged.status(), 403);
    let forged_api = stack
        .http
        .post(format!("{origin}/api/assignment/v1/handovers/{sheet}/acknowledge"))
        .header("cookie", format!("{}={cookie}", shared::auth::SESSION_COOKIE))
        .json(&json!({}))
        .send()
        .await
        .expect("forged API POST");
    assert_eq!(forged_api.status(), 401, "the API refuses a cookie without its x-csrf-token");
    assert_eq!(ledger_entry(&stack, &problem).await["status"], "assigned", "nothing was acknowledged");

    // 签收: one button.
    browser::submit(&official, &format!("#acknowledge-{sheet}"), "document.querySelector('#no-sheets') !== null").await;
    assert_eq!(ledger_entry(&stack, &problem).await["status"], "acknowledged");

    // The problem page, and the rectification with a photo taken on the phone.
    browser::submit(&official, ".problem-link", "document.querySelector('#measures') !== null").await;
    check_page(&official, "official-problem").await;
    assert!(!browser::text(&official, "#position").await.is_empty(), "the site's position");
    assert!(official.find_element("#minimap").await.is_ok(), "a small map of the site");
    let photo = browser::artifacts().join("workbench-rectification-photo.png");
    official.save_screenshot(chromiumoxide::page::ScreenshotParams::builder().build(), &photo).await.expect("a photo");
    browser::fill(&official, "#measures", "已拆除燃煤设施，完成清洁能源替代").await;
    browser::attach(&official, "#photo", &photo).await;
    browser::submit(&official, "#report-rectification", "document.querySelector('#flash') !== null").await;
    assert_eq!(official.find_elements(".rectification-photo").await.expect("photos").len(), 1);

    // The verifier, invited the same way, finds the task, sees the photo and closes the problem.
    browser::go(&office, &format!("{origin}/workbench/people")).await;
    browser::fill(&office, "#invite-name", "张伟").await;
    browser::choose(&office, "#invite-role", "verifier").await;
    browser::fill(&office, "#invite-team", VERIFIER).await;
    browser::fill(&office, "#invite-email", "zhangwei@t410.example.cn").await;
    browser::submit(&office, "#invite", "document.querySelector('#flash') !== null").await;
    let verifier_link = sign_in_link(&smtp, "zhangwei@t410.example.cn").await;
    let field = Chromium::launch(360).await;
    let verifier = sign_in(&field, &verifier_link, "verifier").await;
    let task = format!("a.task-link[href='/workbench/problems/{problem}']");
    eventually("the task on the verifier's list", WAIT, || async {
        browser::go(&verifier, &format!("{origin}/workbench")).await;
        verifier.find_element(task.as_str()).await.ok().map(|_| ())
    })
    .await;
    // Nearest first, from where the phone is (typed here; the page's button asks the phone).
    browser::go(&verifier, &format!("{origin}/workbench?lat=37.07&lon=114.5&city={XINGTAI}")).await;
    assert!(browser::text(&verifier, ".tasks").await.contains("某某铸造厂"), "the task names its site");
    assert!(!browser::text(&verifier, ".distance").await.is_empty(), "and how far it is");
    check_page(&verifier, "verifier-home").await;
    browser::submit(&verifier, &task, "document.querySelector('#give-verdict') !== null").await;
    browser::until(
        &verifier,
        "[...document.querySelectorAll('img.rectification-photo')].some(i => i.complete && i.naturalWidth > 100)",
        "the government's photo, loaded",
    )
    .await;
    check_page(&verifier, "verifier-problem").await;
    browser::choose(&verifier, "#result", "rectified").await;
    browser::fill(&verifier, "#note", "现场核查，设施已拆除").await;
    browser::submit(&verifier, "#give-verdict", "document.querySelector('#flash') !== null").await;
    wait_status(&stack, &problem, "closed").await;

    // The verifier signs out: that session is refused at once, by the pages and the services.
    let verifier_cookie = session_cookie(&verifier).await;
    browser::submit(&verifier, "#sign-out", "document.querySelector('#message') !== null").await;
    browser::go(&verifier, &format!("{origin}/workbench")).await;
    assert!(browser::text(&verifier, "#who").await.is_empty(), "signed out");
    refused_everywhere(&stack, &origin, &verifier_cookie, "/api/verification/v1/tasks").await;
    let public = desk.open(&format!("{origin}/problems/{problem}")).await;
    assert!(browser::text(&public, "body").await.contains("已销号"), "the public page shows it closed");
    public.close().await.expect("close the public page");
    office.bring_to_front().await.expect("back to the office's tab");

    // The office revokes the official: the next request is signed out, everywhere.
    browser::go(&office, &format!("{origin}/workbench/people")).await;
    let row = "//tr[td[@class='person-name' and text()='王芳']]";
    let reason = format!(
        "(() => {{ const row = document.evaluate(\"{row}\", document, null, 9, null).singleNodeValue; const i = row.querySelector('input[name=reason]'); i.value = '调离岗位'; return row.querySelector('button.revoke').id; }})()"
    );
    let button = browser::evaluate(&office, &reason).await.as_str().expect("the revoke button").to_string();
    browser::submit(&office, &format!("#{button}"), "document.querySelector('#flash') !== null").await;
    browser::go(&official, &format!("{origin}/workbench")).await;
    assert!(browser::text(&official, "#who").await.is_empty(), "the revoked official is signed out");
    refused_everywhere(&stack, &origin, &cookie, "/api/assignment/v1/ledger").await;

    // The audit log names the person who acknowledged.
    let (_, audit) = get(&stack, "assignment", "/v1/admin/audit?limit=50", Some(&stack.admin())).await;
    let named = audit["items"].as_array().expect("audit").iter().any(|r| r["person"] == "王芳" && r["status"] == 200);
    assert!(named, "the audit log names the official: {audit}");

    for chromium in [desk, phone, field] {
        chromium.close().await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A notice's receipt link: opening it changes nothing (a mail scanner follows links); its 签收
/// button acknowledges the sheet in the ledger, as the city's own acknowledgement does.
#[tokio::test(flavor = "multi_thread")]
async fn the_receipt_button_acknowledges_the_sheet_and_opening_the_link_does_nothing() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let problem = report(&stack, XINGTAI, None, "某某砖厂", &["dust"]).await.remove(0);
    let (sheet, link) = eventually("the handover notice with its receipt link", WAIT, || async {
        receiver.received().into_iter().find_map(|r| {
            let notice = r.json();
            let link = notice["receipt_url"].as_str()?.to_string();
            (notice["jurisdiction"] == XINGTAI).then(|| (notice["handover_no"].as_str().map(str::to_string), link))
        })
    })
    .await;
    let sheet = sheet.expect("a handover notice names its sheet");

    for _ in 0..3 {
        let opened = stack.http.get(&link).send().await.expect("open the link");
        assert_eq!(opened.status(), 200);
        assert!(opened.text().await.unwrap_or_default().contains("id=\"acknowledge\""), "the page has the button");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ledger_entry(&stack, &problem).await["status"], "assigned", "opening the link acknowledged nothing");

    let chromium = Chromium::launch(360).await;
    let page = chromium.open(&link).await;
    browser::submit(&page, "#acknowledge", "document.querySelector('#acknowledged') !== null").await;
    check_page(&page, "receipt-acknowledged").await;
    chromium.close().await;
    let entry = eventually("the sheet acknowledged in the ledger", WAIT, || async {
        let entry = ledger_entry(&stack, &problem).await;
        (entry["status"] == "acknowledged").then_some(entry)
    })
    .await;
    assert_eq!(entry["handover_no"], sheet.as_str());
    let (_, handover) = get(&stack, "assignment", &format!("/v1/handovers/{sheet}"), Some(&stack.admin())).await;
    assert!(!handover["handover"]["acknowledged_at"].is_null(), "{handover}");
}

/// A dispute and an extension request wait for the campaign office: its people hear of each by
/// e-mail, once.
#[tokio::test(flavor = "multi_thread")]
async fn the_office_is_told_of_a_dispute_and_an_extension_request() {
    let (smtp, stack, _receiver) = mailing_stack(false).await;
    let office = json!({ "name": "李明", "role": "admin", "email": "office@campaign.example.cn" });
    assert_eq!(post(&stack, "notification", "/v1/people", &stack.admin(), office).await.0, 201);
    let problems = report(&stack, XINGTAI, None, "某某石料厂", &["dust", "vocs"]).await;
    let official = stack.token(shared::auth::Role::LocalGov, None, Some(XINGTAI));
    let deadline = eventually("the problems handed over with deadlines", WAIT, || async {
        let (status, body) =
            get(&stack, "assignment", &format!("/v1/problems/{}", problems[1]), Some(&stack.admin())).await;
        (status == 200).then(|| body["entry"]["deadline"].as_str().map(str::to_string)).flatten()
    })
    .await;
    let path = format!("/v1/problems/{}/dispute", problems[0]);
    let (status, body) = post(&stack, "assignment", &path, &official, json!({ "reason": "该企业属于邯郸市" })).await;
    assert_eq!(status, 201, "{body}");
    let later = time::Date::parse(&deadline, time::macros::format_description!("[year]-[month]-[day]")).unwrap()
        + time::Duration::days(10);
    let path = format!("/v1/problems/{}/extensions", problems[1]);
    let (status, body) = post(
        &stack,
        "assignment",
        &path,
        &official,
        json!({ "deadline": later.to_string(), "reason": "设备采购周期长" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let texts = eventually("both alerts in the office's mailbox", WAIT, || async {
        let texts: Vec<String> = smtp
            .mails()
            .iter()
            .filter(|m| m.to.iter().any(|t| t.contains("office@campaign.example.cn")))
            .filter_map(|m| mail_parser::MessageParser::default().parse(&m.data)?.body_text(0).map(|t| t.into_owned()))
            .filter(|t| t.contains("待督查办决定"))
            .collect();
        (texts.len() >= 2).then_some(texts)
    })
    .await;
    assert!(texts.iter().any(|t| t.contains("该企业属于邯郸市") && t.contains(&problems[0])), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("设备采购周期长") && t.contains(&problems[1])), "{texts:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = smtp.mails().iter().filter(|m| String::from_utf8_lossy(&m.data).contains("office.")).count();
    assert_eq!(alerts, 2, "each alert is sent once");
}
