//! Token revocations travel as events on a stream of their own (`{ns}.auth.token.revoked`):
//! tokens belong to no service, so no service's stream carries them. Every service follows the
//! stream from its start and refuses a revoked token from the moment it hears of it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::TokenVerifier;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRevoked {
    /// One token (a session signed out, a machine token leaked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Uuid>,
    /// Every token naming this person (revoked by the campaign office).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<Uuid>,
    pub reason: String,
}

impl TokenRevoked {
    fn message_id(&self) -> String {
        match (self.token_id, self.person_id) {
            (Some(token), _) => format!("revoke-{token}"),
            (None, Some(person)) => format!("revoke-person-{person}"),
            (None, None) => "revoke-nothing".into(),
        }
    }
}

fn subject(namespace: &str) -> String {
    format!("{namespace}.auth.token.revoked")
}

async fn ensure_stream(js: &jetstream::Context, namespace: &str, replicas: usize) -> anyhow::Result<stream::Stream> {
    let config = stream::Config {
        name: format!("{namespace}_auth").replace(['.', '-'], "_").to_uppercase(),
        subjects: vec![format!("{namespace}.auth.>")],
        storage: stream::StorageType::File,
        // Longer than any token lives.
        max_age: Duration::from_secs(400 * 86_400),
        duplicate_window: Duration::from_secs(15 * 60),
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| anyhow::anyhow!("cannot create the revocation stream: {e}"))
}

/// Publishes a revocation; the same token revoked twice is one message. `replicas` as in
/// `CommonConfig::stream_replicas`, should the stream not exist yet.
pub async fn revoke(
    js: &jetstream::Context,
    namespace: &str,
    replicas: usize,
    revoked: &TokenRevoked,
) -> anyhow::Result<()> {
    ensure_stream(js, namespace, replicas).await?;
    let message = jetstream::message::PublishMessage::build()
        .payload(serde_json::to_vec(revoked)?.into())
        .message_id(revoked.message_id());
    js.send_publish(subject(namespace), message).await?.await?;
    Ok(())
}

/// Follows the revocations from the stream's start into `verifier` until `shutdown`, starting
/// again after a broker restart.
pub async fn follow(
    js: jetstream::Context,
    namespace: String,
    replicas: usize,
    verifier: Arc<TokenVerifier>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let result = async {
            let stream = ensure_stream(&js, &namespace, replicas).await?;
            let consumer = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                })
                .await?;
            let mut messages = consumer.messages().await?;
            loop {
                tokio::select! {
                    next = messages.next() => match next {
                        Some(Ok(message)) => {
                            if let Ok(revoked) = serde_json::from_slice::<TokenRevoked>(&message.payload) {
                                if let Some(token) = revoked.token_id {
                                    verifier.revoke(token);
                                }
                                if let Some(person) = revoked.person_id {
                                    verifier.revoke_person(person);
                                }
                            }
                        }
                        Some(Err(e)) => return Err(anyhow::Error::from(e)),
                        None => return Ok(()),
                    },
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "revocations: following again");
        }
        tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => {}, _ = shutdown.cancelled() => return }
    }
}
