//! One problem's trace across services: the services export spans over OTLP/HTTP to a receiver
//! started here, and the report's `traceparent` is carried through NATS to every consumer.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use shared::testing::{StackOptions, WebhookReceiver, eventually, free_port};

use crate::support::*;

/// Spans received, as (service name, trace id in hex).
type Spans = Arc<Mutex<Vec<(String, String)>>>;

async fn receive_traces(State(spans): State<Spans>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut spans = spans.lock().expect("spans");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            let trace_id: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
            spans.push((service.clone(), trace_id));
        }
    }
    ""
}

#[tokio::test(flavor = "multi_thread")]
async fn one_report_is_one_trace_across_three_services() {
    let spans: Spans = Arc::default();
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("OTLP receiver port");
    let app = axum::Router::new().route("/v1/traces", post(receive_traces)).with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut options = StackOptions::default();
    options.env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://127.0.0.1:{port}")));
    options.env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()));
    let stack = shared::testing::Stack::start(std::path::Path::new(env!("CARGO_BIN_EXE_skyledger")), options).await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;

    // The field client starts the trace; every service the problem passes through continues it.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let report = inspection(XINGTAI, Some("130502"), "某某铸造厂", &["scattered_polluting"]);
    let response = stack
        .http
        .post(format!("{}/v1/inspections", stack.url("intake")))
        .bearer_auth(inspector(&stack))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&report)
        .send()
        .await
        .expect("the report is sent");
    assert_eq!(response.status(), 201);

    let services = eventually("spans of one trace from three services", WAIT, || async {
        let spans = spans.lock().expect("spans");
        let mut services: Vec<String> =
            spans.iter().filter(|(_, t)| *t == trace_id).map(|(service, _)| service.clone()).collect();
        services.sort();
        services.dedup();
        // Each exports on its own schedule: wait for the two the report must pass through too,
        // not only for any three.
        let through =
            ["skyledger-intake", "skyledger-assignment"].iter().all(|e| services.iter().any(|s| s.contains(e)));
        (services.len() >= 3 && through).then_some(services)
    })
    .await;
    for expected in ["skyledger-intake", "skyledger-assignment"] {
        assert!(services.iter().any(|s| s.contains(expected)), "{expected} in {services:?}");
    }
    // The logs carry the trace id too: intake's line for the request names it.
    let log = stack.services["intake"].log_text();
    assert!(
        log.lines().any(|l| l.contains(&trace_id) && l.contains("/v1/inspections")),
        "intake's log names the trace"
    );
}
