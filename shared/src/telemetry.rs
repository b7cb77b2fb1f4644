//! Logs as JSON lines through `tracing`; traces exported over OTLP when the standard `OTEL_*`
//! variables ask for it; and the W3C `traceparent` carried across NATS so one problem's trace
//! spans every service it passes through.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes pending spans when dropped; keep it alive for the life of the process.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

fn otlp_requested() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let exporter_none = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none");
    !disabled && !exporter_none && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

fn otlp_exporter() -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    use opentelemetry_otlp::WithExportConfig;
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|_| "http/protobuf".into());
    let exporter = if protocol == "grpc" {
        opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?
    } else {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()?
    };
    Ok(exporter)
}

/// Sets up logging and tracing for a process named `service`. `RUST_LOG` filters (default
/// `info`); `SKYLEDGER_LOG_FORMAT=text` gives human-readable lines instead of JSON.
pub fn init(service: &str) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let service_name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| format!("skyledger-{service}"));
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    let mut export_error = None;
    if otlp_requested() {
        match otlp_exporter() {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => export_error = Some(e),
        }
    }
    // Without an exporter the provider still gives every span a trace id, so logs and
    // `traceparent` headers carry one.
    let provider = builder.build();
    let tracer = provider.tracer("skyledger");
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("SKYLEDGER_LOG_FORMAT").is_ok_and(|v| v == "text");
    let fmt_layer = if text {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init();
    if let Some(e) = export_error {
        tracing::warn!(error = %e, "OTLP export requested but could not be set up");
    }
    TelemetryGuard { provider }
}

/// The W3C `traceparent` of the current span, to store beside an outgoing event.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace named by an incoming `traceparent`.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let carrier = HashMap::from([("traceparent".to_string(), tp.to_string())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
}

/// The trace id of `span`, for log fields and tests.
pub fn trace_id(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}
