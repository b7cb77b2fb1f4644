//! The simulated clock: an admin moves it forward on one service and every service follows.

use std::path::Path;

use serde_json::json;
use shared::testing::{Stack, StackOptions, eventually};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_simulated_clock_moves_forward_for_every_service() {
    let mut options = StackOptions::default();
    options.env.push(("SKYLEDGER__CLOCK__SIMULATED".into(), "true".into()));
    let stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let admin = stack.admin();
    let (status, answer) =
        post(&stack, "intake", "/v1/admin/clock", &admin, json!({ "advance_secs": 3 * 86_400 })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["offset_secs"], 3 * 86_400);
    for service in shared::testing::SERVICES {
        eventually("every service to follow the clock", WAIT, || async {
            let (_, clock) = get(&stack, service, "/v1/admin/clock", Some(&admin)).await;
            (clock["offset_secs"] == 3 * 86_400 && clock["simulated"] == true).then_some(())
        })
        .await;
    }
    let (status, _) = post(&stack, "assignment", "/v1/admin/clock", &admin, json!({ "advance_secs": 3600 })).await;
    assert_eq!(status, 200);
    let (_, clock) = get(&stack, "intake", "/v1/admin/clock", Some(&admin)).await;
    assert!(clock["offset_secs"] == 3 * 86_400 || clock["offset_secs"] == 3 * 86_400 + 3600);
    let inspector = inspector(&stack);
    assert_eq!(post(&stack, "intake", "/v1/admin/clock", &inspector, json!({ "advance_secs": 1 })).await.0, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_clock_cannot_be_moved() {
    let stack = start().await;
    let (status, problem) =
        post(&stack, "verification", "/v1/admin/clock", &stack.admin(), json!({ "advance_secs": 60 })).await;
    assert_eq!((status.as_u16(), problem["errors"][0]["field"].as_str()), (409, Some("clock")));
}
