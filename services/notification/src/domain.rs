//! Notification's rules, free of I/O: what a handover notice says, how a webhook is signed
//! (Standard Webhooks 1.0), what a receiver's answer means, and when to try again.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use shared::error::Validator;
use shared::events::HandoverIssued;
use shared::reference;

/// The JSON body of a handover notice, as webhooks carry it.
pub fn handover_notice(notice_id: uuid::Uuid, sheet: &HandoverIssued) -> Value {
    let deadline = sheet.problems.iter().map(|p| p.deadline).min();
    json!({
        "type": "handover.issued",
        "notice_id": notice_id,
        "handover_no": sheet.handover_no,
        "round": sheet.round,
        "jurisdiction": sheet.city_code,
        "issued_at": shared::csv::timestamp(sheet.issued_at),
        "deadline": deadline,
        "problems": sheet.problems.iter().map(|p| json!({
            "id": p.problem_id,
            "category": p.category,
            "severity": p.severity,
            "jurisdiction": p.jurisdiction,
            "site": { "name": p.site_name },
            "description": p.description,
            "deadline": p.deadline,
        })).collect::<Vec<_>>(),
    })
}

/// `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` for each secret, space-separated.
pub fn sign_webhook(secrets: &[String], msg_id: &str, timestamp: i64, body: &[u8]) -> anyhow::Result<String> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let key = B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key)?;
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        signatures.push(format!("v1,{}", B64.encode(mac.finalize().into_bytes())));
    }
    Ok(signatures.join(" "))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Delivered,
    /// Try again, no sooner than the receiver asked (`Retry-After`), if it did.
    RetryLater(Option<Duration>),
    /// The receiver refused for good (4xx other than 408 and 429).
    Refused,
}

pub fn judge_status(status: u16, retry_after: Option<Duration>) -> Answer {
    match status {
        200..=299 => Answer::Delivered,
        408 | 429 | 500..=599 => Answer::RetryLater(retry_after),
        _ => Answer::Refused,
    }
}

/// The wait before try `attempts_made + 1`: seconds at first (the fourth try comes within two
/// minutes), then ever more slowly; `jitter` in [0, 1) spreads retries of many notices.
pub fn retry_delay(attempts_made: i32, jitter: f64) -> Duration {
    const STEPS: [u64; 10] = [2, 8, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600];
    let base = STEPS[(attempts_made.max(1) as usize - 1).min(STEPS.len() - 1)] as f64;
    Duration::from_secs_f64(base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Webhook {
    pub url: String,
    /// One secret, or several during rotation.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl Webhook {
    pub fn all_secrets(&self) -> Vec<String> {
        self.secret.iter().chain(&self.secrets).cloned().collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecipientRequest {
    pub name: String,
    #[serde(default)]
    pub webhook: Option<Webhook>,
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default = "zh_cn")]
    pub language: String,
}

fn zh_cn() -> String {
    "zh-CN".into()
}

pub const LANGUAGES: &[&str] = &["zh-CN", "en"];

pub fn validate_recipient(code: &str, r: &RecipientRequest, deny_hosts: &[String]) -> Validator {
    let mut v = Validator::new();
    v.check(reference::is_jurisdiction(code), "code", format!("{code} is not a key city or a county of one"));
    v.check(!r.name.trim().is_empty(), "name", "the recipient's name, e.g. 邢台市人民政府");
    v.check(LANGUAGES.contains(&r.language.as_str()), "language", "zh-CN or en");
    if let Some(hook) = &r.webhook {
        match reqwest::Url::parse(&hook.url) {
            Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {
                let host = url.host_str().unwrap_or_default();
                v.check(
                    !deny_hosts.iter().any(|d| d == host),
                    "webhook.url",
                    format!("webhooks to {host} are not allowed"),
                );
            }
            _ => v.fail("webhook.url", "an http or https URL"),
        }
        let secrets = hook.all_secrets();
        v.check(!secrets.is_empty(), "webhook.secret", "a webhook needs a whsec_ secret");
        for (i, s) in secrets.iter().enumerate() {
            let ok = s.strip_prefix("whsec_").is_some_and(|k| B64.decode(k).is_ok_and(|k| k.len() >= 16));
            let field = if i == 0 && hook.secret.is_some() {
                "webhook.secret".to_string()
            } else {
                format!("webhook.secrets[{}]", i - usize::from(hook.secret.is_some()))
            };
            v.check(ok, field, "whsec_ followed by at least 16 bytes in base64");
        }
    }
    for (i, email) in r.emails.iter().enumerate() {
        v.check(email.parse::<lettre::Address>().is_ok(), format!("emails[{i}]"), "not an e-mail address");
    }
    v
}

/// A notice's e-mail subject and text, from the template files for its language.
pub fn handover_email(language: &str, recipient_name: &str, notice: &Value) -> (String, String) {
    let (subject, body, item) = if language == "en" {
        (
            include_str!("../templates/handover.en.subject"),
            include_str!("../templates/handover.en.txt"),
            include_str!("../templates/handover.en.problem"),
        )
    } else {
        (
            include_str!("../templates/handover.zh-CN.subject"),
            include_str!("../templates/handover.zh-CN.txt"),
            include_str!("../templates/handover.zh-CN.problem"),
        )
    };
    let city_code = notice["jurisdiction"].as_str().unwrap_or_default();
    let city_name = reference::city(city_code)
        .map(|c| if language == "en" { c.name_en.clone() } else { c.name_zh.clone() })
        .unwrap_or_else(|| city_code.to_string());
    let problems = notice["problems"].as_array().cloned().unwrap_or_default();
    let listed: String = problems
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let category = p["category"].as_str().unwrap_or_default();
            let category_name = reference::category(category)
                .map(|c| if language == "en" { c.name_en.clone() } else { c.name_zh.clone() })
                .unwrap_or_else(|| category.to_string());
            fill(
                item,
                &[
                    ("index", &(i + 1).to_string()),
                    ("category_name", &category_name),
                    ("site_name", p["site"]["name"].as_str().unwrap_or_default()),
                    ("jurisdiction", p["jurisdiction"].as_str().unwrap_or_default()),
                    ("deadline", p["deadline"].as_str().unwrap_or_default()),
                    ("description", p["description"].as_str().unwrap_or_default()),
                    ("problem_id", p["id"].as_str().unwrap_or_default()),
                ],
            )
        })
        .collect();
    let values = [
        ("recipient_name", recipient_name),
        ("handover_no", notice["handover_no"].as_str().unwrap_or_default()),
        ("city_name", &city_name),
        ("count", &problems.len().to_string()),
        ("notice_id", notice["notice_id"].as_str().unwrap_or_default()),
        ("problems", &listed),
    ];
    (fill(subject, &values).trim().to_string(), fill(body, &values))
}

/// Replaces each `{name}` in a template by its value.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification's reference implementations.
        let secret = vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()];
        let body = br#"{"test": 2432232314}"#;
        let signature = sign_webhook(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_active_secret_signs_during_rotation() {
        let secrets =
            vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string(), "whsec_AAAAAAAAAAAAAAAAAAAAAAAA".to_string()];
        let signature = sign_webhook(&secrets, "m", 1, b"{}").unwrap();
        assert_eq!(signature.split(' ').count(), 2);
    }

    #[test]
    fn receivers_answers_decide_retry_or_not() {
        assert_eq!(judge_status(204, None), Answer::Delivered);
        assert_eq!(judge_status(503, None), Answer::RetryLater(None));
        assert_eq!(judge_status(429, Some(Duration::from_secs(5))), Answer::RetryLater(Some(Duration::from_secs(5))));
        assert_eq!(judge_status(408, None), Answer::RetryLater(None));
        assert_eq!(judge_status(410, None), Answer::Refused);
        assert_eq!(judge_status(400, None), Answer::Refused);
    }

    #[test]
    fn the_fourth_try_comes_within_two_minutes() {
        let worst: Duration = (1..=3).map(|n| retry_delay(n, 0.999)).sum();
        assert!(worst < Duration::from_secs(120), "{worst:?}");
        assert!(retry_delay(9, 0.0) > retry_delay(4, 1.0));
    }

    #[test]
    fn the_handover_email_lists_every_problem_in_the_recipients_language() {
        let notice = json!({ "handover_no": "2019-R01-130500-0509-001", "jurisdiction": "130500", "notice_id": "n-1",
            "problems": [ { "id": "p-1", "category": "dust", "site": { "name": "某工地" }, "jurisdiction": "130502",
                            "deadline": "2019-05-19", "description": "未苫盖" } ] });
        let (subject, body) = handover_email("zh-CN", "邢台市人民政府", &notice);
        assert_eq!(subject, "【电子督办单】2019-R01-130500-0509-001：邢台市交办问题 1 个");
        assert!(body.contains("1. [扬尘] 某工地（责任单位 130502，整改期限 2019-05-19）"));
        let (subject, _) = handover_email("en", "Xingtai", &notice);
        assert!(subject.contains("Xingtai"));
    }
}
