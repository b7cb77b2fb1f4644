//! Plumbing every Skyledger service uses, written once.
//!
//! A service is a library crate whose `lib.rs` builds a [`runtime::Runtime`] from its config,
//! registers its event handlers and serves its HTTP API; everything that is not the service's own
//! domain (envelope, outbox relay, inbox consumer, dead letters, config, telemetry, problem+json
//! errors, tokens, reference data) lives here.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod csv;
pub mod db;
pub mod envelope;
pub mod error;
pub mod events;
pub mod http;
pub mod i18n;
pub mod inbox;
pub mod messaging;
pub mod openapi_doc;
pub mod order;
pub mod outbox;
pub mod reference;
pub mod revocation;
pub mod routing;
pub mod runtime;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ApiError, FieldError};

/// rustls must have exactly one process-wide crypto provider; with reqwest, sqlx and async-nats
/// in one binary nothing picks it automatically, so every binary calls this first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
