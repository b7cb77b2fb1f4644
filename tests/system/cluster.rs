//! Faults on a three-node JetStream cluster. The five services run on three nats-servers with
//! routes between them (every stream with 3 replicas, the services given all three URLs) while
//! a steady stream of reports goes to intake. The node leading intake's stream is SIGKILLed and
//! started again; then the leader is killed again and, while it is down, a second node: the
//! cluster has lost its quorum and stores nothing, and intake answers 503 with `Retry-After`
//! rather than taking reports it cannot pass on. Both come back. At the end every report
//! answered 200 has reached its final state exactly once in every service (the same checks as
//! the fault suite), and nothing was dead-lettered. The figures go to
//! `target/test-artifacts/cluster-faults.txt`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shared::messaging::stream_name;
use shared::testing::{SERVICES, Stack, StackOptions, WebhookReceiver, eventually};

use crate::faults::{assert_final_state_once, start_reporting};
use crate::support::*;

/// The node (0, 1, 2) that leads intake's stream, once there is a leader and, when `all_current`,
/// every replica has caught up.
async fn intake_stream_leader(stack: &Stack, js: &async_nats::jetstream::Context, all_current: bool) -> Option<usize> {
    let mut stream = js.get_stream(stream_name(&stack.namespace, "intake")).await.ok()?;
    let info = stream.info().await.ok()?;
    let cluster = info.cluster.clone()?;
    let leader = cluster.leader?;
    let current = cluster.replicas.len() == 2 && cluster.replicas.iter().all(|r| r.current && !r.offline);
    if all_current && !current {
        return None;
    }
    leader.strip_prefix('n')?.parse::<usize>().ok().map(|n| n - 1)
}

// When it does not settle it says where each missing problem stuck: intake's outbox rows for it
// (sent or not, and what intake logged of them), every stream's and consumer's position.
#[tokio::test(flavor = "multi_thread")]
async fn a_three_node_cluster_loses_a_node_then_its_quorum_and_nothing_accepted_is_lost() {
    let mut options = StackOptions { nats_nodes: 3, ..Default::default() };
    options.env.push(("SKYLEDGER__NOTIFICATION__RETRY_SCALE".into(), "0.05".into()));
    let mut stack = Stack::start(Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let js = async_nats::jetstream::new(stack.nats_client().await);
    let stream = js.get_stream(stream_name(&stack.namespace, "intake")).await.expect("intake's stream");
    assert_eq!(stream.cached_info().config.num_replicas, 3, "streams keep three replicas on a cluster");

    let stop = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicU64::new(0));
    let reporting = start_reporting(&stack, 4, Duration::from_millis(250), stop.clone(), unavailable.clone());
    let started = Instant::now();
    let at = |t: Instant| t.duration_since(started).as_secs_f64();
    let mut log = Vec::new();
    let until_healthy = Duration::from_secs(90);

    // One node lost: its leadership moves, and the reports go on.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let leader =
        eventually("a leader with current replicas", until_healthy, || intake_stream_leader(&stack, &js, true)).await;
    let killed = Instant::now();
    stack.nats_node(leader).kill();
    let next = eventually("a new leader of intake's stream", until_healthy, || async {
        intake_stream_leader(&stack, &js, false).await.filter(|l| *l != leader)
    })
    .await;
    log.push(format!(
        "SIGKILL node n{} (leader of intake's stream) at {:.1} s; n{} leads after {:.1} s",
        leader + 1,
        at(killed),
        next + 1,
        killed.elapsed().as_secs_f64()
    ));
    let answered_before = unavailable.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| stack.nats_node(leader).start_again());
    let restarted = Instant::now();
    eventually("the restarted node to catch up", until_healthy, || intake_stream_leader(&stack, &js, true)).await;
    log.push(format!(
        "n{} started again at {:.1} s; every replica current after {:.1} s",
        leader + 1,
        at(restarted),
        restarted.elapsed().as_secs_f64()
    ));

    // The quorum lost: the leader, then a second node while the first is down.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let first = eventually("a leader", until_healthy, || intake_stream_leader(&stack, &js, true)).await;
    let second = (0..3).find(|n| *n != first).expect("another node");
    let lost = Instant::now();
    stack.nats_node(first).kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.nats_node(second).kill();
    // A report sent now is refused with Retry-After and recorded nowhere: the final check finds
    // intake holding exactly the problems answered 200 or 201. One taken before the relay has
    // noticed the loss waits in intake's outbox and counts as accepted.
    let mut probes_accepted = Vec::new();
    let token = inspector(&stack);
    let refused = loop {
        let check = inspection(XINGTAI, None, "法定人数丧失时的厂", &["vocs"]);
        let response = stack
            .http
            .post(format!("{}/v1/inspections", stack.url("intake")))
            .bearer_auth(&token)
            .json(&check)
            .send()
            .await
            .expect("intake answers while NATS has lost its quorum");
        let status = response.status();
        if status.is_success() {
            probes_accepted.extend(problem_ids(&check));
        } else {
            assert_eq!(status, 503, "{}", response.text().await.unwrap_or_default());
            assert!(response.headers().contains_key("retry-after"), "a 503 says when to try again");
            let problem: serde_json::Value = response.json().await.expect("problem+json");
            assert!(problem["detail"].as_str().unwrap_or_default().contains("broker"), "{problem}");
            break Instant::now();
        }
        assert!(lost.elapsed() < Duration::from_secs(60), "intake never refused while the quorum was lost");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    log.push(format!(
        "SIGKILL n{} (leader) at {:.1} s and n{} 2 s later: quorum lost; intake answers 503 + Retry-After {:.1} s after the first kill ({} single reports taken before that)",
        first + 1,
        at(lost),
        second + 1,
        refused.duration_since(lost).as_secs_f64(),
        probes_accepted.len()
    ));
    let refusals_before = unavailable.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let back = Instant::now();
    tokio::task::block_in_place(|| {
        stack.nats_node(first).start_again();
        stack.nats_node(second).start_again();
    });
    eventually("the cluster whole again", until_healthy, || intake_stream_leader(&stack, &js, true)).await;
    let refusals_during_loss = unavailable.load(Ordering::SeqCst) - refusals_before;
    assert!(refusals_during_loss > 0, "the reports met 503 with Retry-After while the quorum was lost");
    log.push(format!(
        "both started again at {:.1} s; a leader and every replica current after {:.1} s; {} answers 503 to the batches in those 5 s",
        at(back),
        back.elapsed().as_secs_f64(),
        refusals_during_loss
    ));

    // The reports go on a while on the whole cluster, then stop.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let posting = reporting.await.expect("the reporting task");
    let reporting_secs = started.elapsed().as_secs_f64();
    assert!(posting.refused.is_empty(), "intake refused good reports: {:?}", posting.refused);
    let mut accepted: HashSet<String> = posting.accepted.iter().cloned().collect();
    assert_eq!(accepted.len(), posting.accepted.len(), "each problem accepted once");
    accepted.extend(probes_accepted);
    for name in SERVICES {
        assert!(stack.services.get_mut(name).unwrap().is_running(), "{name} exited:\n{}", stack.logs());
    }

    let settle = Instant::now();
    let figures = assert_final_state_once(&stack, &receiver, &accepted).await;
    let mut retries: Vec<_> = posting.retries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    retries.sort();
    let mut report = vec![
        "cluster faults: three nats-servers, streams with 3 replicas".to_string(),
        format!(
            "reports: {} batches of 4 in {reporting_secs:.0} s; {} problems accepted; other answers: {}; 503 answers before the quorum loss: {answered_before}",
            posting.batches,
            accepted.len(),
            if retries.is_empty() { "none".into() } else { retries.join(", ") }
        ),
    ];
    report.extend(log.iter().map(|l| format!("  {l}")));
    report.extend(figures);
    report.push(format!("settled {:.1} s after the reports stopped", settle.elapsed().as_secs_f64()));
    let report = report.join("\n");
    println!("{report}");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    let _ = std::fs::create_dir_all(&artifacts);
    let _ = std::fs::write(artifacts.join("cluster-faults.txt"), format!("{report}\n"));
}
