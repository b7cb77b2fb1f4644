//! Publication's rules, free of I/O: when a problem is public, what its public status is,
//! what its history says, and how the hash chain is computed.

use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::reference;

/// A problem is public once intake has said what it is and assignment has handed it over.
pub fn is_public(reported: bool, handed_over: bool) -> bool {
    reported && handed_over
}

/// The public status from the facts known, whatever order they arrived in: verification's
/// latest word, else how far assignment has taken the problem.
pub fn public_status(verification_status: Option<&str>, acknowledged: bool, handed_over: bool) -> String {
    match verification_status {
        Some(s) => s.to_string(),
        None if acknowledged => "acknowledged".into(),
        None if handed_over => "assigned".into(),
        None => "reported".into(),
    }
}

fn category_zh(category: &str) -> String {
    reference::category(category).map(|c| c.name_zh.clone()).unwrap_or_else(|| category.to_string())
}

/// What the public history says for each step. Never names teams, inspectors or verifiers.
pub fn said_reported(category: &str, site_name: &str) -> String {
    format!("发现问题：{}（{}） / Problem found at {site_name}: {category}", category_zh(category), site_name)
}

pub fn said_assigned(handover_no: &str, jurisdiction: &str, deadline: &str) -> String {
    format!(
        "交办 {jurisdiction}，督办单 {handover_no}，整改期限 {deadline} / Handed over to {jurisdiction} on sheet {handover_no}, deadline {deadline}"
    )
}

pub fn said_acknowledged(handover_no: &str) -> String {
    format!("已签收督办单 {handover_no} / Handover sheet {handover_no} acknowledged")
}

pub fn said_rectification_reported() -> String {
    "报告整改完成 / Rectification reported".into()
}

pub fn said_closed() -> String {
    "现场核查通过，销号 / Verified on site and closed".into()
}

pub fn said_reopened(result: &str, deadline: &str) -> String {
    let why = if result == "fake_rectification" {
        "虚假整改 / fake rectification"
    } else {
        "未整改到位 / not rectified"
    };
    format!("核查未通过（{why}），重新整改，期限 {deadline} / Verification failed, reopened, new deadline {deadline}")
}

/// The all-zero hash the chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 of an entry's content (JSON with its keys sorted), hex.
pub fn content_hash(content: &Value) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(content).expect("JSON value serialises")))
}

/// Each entry's hash covers the previous entry's hash and its own content's hash.
pub fn entry_hash(prev_hash: &str, content_hash: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(content_hash.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_public_only_when_reported_and_handed_over() {
        assert!(!is_public(true, false));
        assert!(!is_public(false, true), "closed seen before reported: wait for intake's facts");
        assert!(is_public(true, true));
    }

    #[test]
    fn status_ends_right_whatever_the_arrival_order() {
        assert_eq!(public_status(None, false, false), "reported");
        assert_eq!(public_status(None, false, true), "assigned");
        assert_eq!(public_status(None, true, true), "acknowledged");
        // Closed may arrive before assigned: verification's word stands.
        assert_eq!(public_status(Some("closed"), false, false), "closed");
        assert_eq!(public_status(Some("reopened"), true, true), "reopened");
    }

    #[test]
    fn the_chain_links_each_entry_to_the_one_before() {
        let a = content_hash(&serde_json::json!({"b": 1, "a": 2}));
        assert_eq!(a, content_hash(&serde_json::json!({"a": 2, "b": 1})), "key order does not matter");
        let first = entry_hash(GENESIS, &a);
        let second = entry_hash(&first, &a);
        assert_ne!(first, second);
        assert_eq!(first.len(), 64);
    }

    #[test]
    fn history_never_names_a_team() {
        assert!(!said_reopened("fake_rectification", "2019-06-08").contains("T-"));
        assert!(said_assigned("2019-R01-130500-0509-001", "130502", "2019-06-08").contains("130502"));
    }
}
