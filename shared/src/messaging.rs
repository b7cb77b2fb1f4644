//! NATS JetStream: connecting, the one stream per producing service, and the durable pull
//! consumer per consuming service and stream. Stream and consumer names carry the namespace,
//! since they are global to a NATS account.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use tokio::sync::watch;

use crate::config::CommonConfig;
use crate::events::EventKind;

/// `SKYLEDGER_INTAKE` for namespace `skyledger` and producer `intake`.
pub fn stream_name(namespace: &str, producer: &str) -> String {
    format!("{namespace}_{producer}").replace(['.', '-'], "_").to_uppercase()
}

/// The durable consumer of `consumer_service` on a stream.
pub fn consumer_name(namespace: &str, consumer_service: &str) -> String {
    format!("{namespace}_{consumer_service}").replace('.', "_")
}

/// Connects as the configured user (if any), retrying until the server answers or
/// `give_up_after` passes; see [`connect`].
pub async fn connect_as(
    config: &CommonConfig,
    client_name: &str,
    give_up_after: Duration,
) -> anyhow::Result<(async_nats::Client, watch::Receiver<u64>)> {
    let credentials = (!config.nats_user.is_empty()).then(|| (config.nats_user.clone(), config.nats_password.clone()));
    connect(&config.nats_url, credentials, client_name, give_up_after).await
}

/// The servers of a NATS URL: one (`nats://host:4222`) or a cluster's seeds separated by commas
/// (`nats://a:4222,nats://b:4222`). The client learns the cluster's other members from the one
/// it reaches, and fails over between them.
pub fn server_addrs(url: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    let addrs = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.parse::<async_nats::ServerAddr>().map_err(|e| anyhow::anyhow!("bad NATS URL {u:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!addrs.is_empty(), "no NATS URL given");
    Ok(addrs)
}

/// Connects, retrying until the server answers or `give_up_after` passes. The receiver counts
/// the connections made (the first one and every reconnection after the broker went away), so
/// the outbox relay can send recent events again after a broker restart.
pub async fn connect(
    url: &str,
    credentials: Option<(String, String)>,
    client_name: &str,
    give_up_after: Duration,
) -> anyhow::Result<(async_nats::Client, watch::Receiver<u64>)> {
    let deadline = tokio::time::Instant::now() + give_up_after;
    let (connections_tx, connections) = watch::channel(0u64);
    let connections_tx = Arc::new(connections_tx);
    loop {
        let tx = connections_tx.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name(client_name)
            .connection_timeout(Duration::from_secs(3))
            // Keep retrying after a broker restart rather than giving up.
            .max_reconnects(None)
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tx.send_modify(|n| *n += 1);
                            tracing::info!("connected to NATS");
                        }
                        async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
                        other => tracing::debug!(event = %other, "NATS connection event"),
                    }
                }
            });
        if let Some((user, password)) = credentials.clone() {
            options = options.user_and_password(user, password);
        }
        match options.connect(server_addrs(url)?).await {
            Ok(client) => return Ok((client, connections)),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, url, "NATS not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("cannot connect to NATS at {url}: {e}")),
        }
    }
}

/// Creates (or finds) the stream of a producing service: every subject under
/// `{ns}.{producer}.>`, on file storage, with a duplicate window long enough to outlast the
/// outbox relay's retries.
pub async fn ensure_stream(
    js: &jetstream::Context,
    namespace: &str,
    producer: &str,
    replicas: usize,
) -> anyhow::Result<stream::Stream> {
    let config = stream::Config {
        name: stream_name(namespace, producer),
        subjects: vec![format!("{namespace}.{producer}.>")],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(15 * 60),
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| anyhow::anyhow!("cannot create stream for {producer}: {e}"))
}

/// The durable pull consumer a service wants on a producer's stream.
pub struct Wanted<'a> {
    pub namespace: &'a str,
    pub producer: &'a str,
    pub consumer_service: &'a str,
    /// The kinds it handles: the consumer is filtered to their subjects.
    pub kinds: &'a [EventKind],
    pub ack_wait: Duration,
    pub replicas: usize,
    /// The stream position the service had acknowledged everything up to: a consumer made
    /// anew starts after it rather than at the stream's beginning.
    pub start_after: Option<u64>,
}

/// The subjects of `kinds`, with and without the partition token.
pub fn filter_subjects(namespace: &str, kinds: &[EventKind]) -> Vec<String> {
    kinds
        .iter()
        .flat_map(|k| {
            let base = crate::envelope::nats_subject(namespace, k, None);
            [format!("{base}.>"), base]
        })
        .collect()
}

/// Whether the server filters a consumer to several subjects (nats-server 2.10 and later).
fn filters_many(client: &async_nats::Client) -> bool {
    let version = client.server_info().version;
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 10)
}

/// Finds the durable pull consumer of a service on a producer's stream, filtered to the
/// subjects it handles (its filter brought up to date), or makes it, starting after the
/// stored position. Redelivery is unbounded at the server: the inbox decides when a message is
/// dead, so a long database outage never silently drops messages.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    client: &async_nats::Client,
    wanted: &Wanted<'_>,
) -> anyhow::Result<consumer::Consumer<consumer::pull::Config>> {
    let stream = ensure_stream(js, wanted.namespace, wanted.producer, wanted.replicas).await?;
    let name = consumer_name(wanted.namespace, wanted.consumer_service);
    let filters = if filters_many(client) {
        filter_subjects(wanted.namespace, wanted.kinds)
    } else {
        tracing::warn!(
            producer = wanted.producer,
            "nats-server older than 2.10: the consumer takes every subject and acknowledges what it does not handle"
        );
        Vec::new()
    };
    match stream.consumer_info(&name).await {
        Ok(info) => {
            let current =
                <consumer::pull::Config as consumer::FromConsumer>::try_from_consumer_config(info.config.clone())
                    .map_err(|e| anyhow::anyhow!("consumer {name} is not a pull consumer: {e}"))?;
            let mut have = current.filter_subjects.clone();
            let mut want = filters.clone();
            have.sort();
            want.sort();
            if have == want {
                return stream.get_consumer(&name).await.map_err(|e| anyhow::anyhow!("consumer {name}: {e}"));
            }
            let config = consumer::pull::Config { filter_subjects: filters, filter_subject: String::new(), ..current };
            stream
                .update_consumer(config)
                .await
                .map_err(|e| anyhow::anyhow!("cannot update consumer {name} on {}: {e}", wanted.producer))
        }
        Err(e) if e.kind() == async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound => {
            let deliver_policy = match wanted.start_after {
                Some(position) => consumer::DeliverPolicy::ByStartSequence { start_sequence: position + 1 },
                None => consumer::DeliverPolicy::All,
            };
            let config = consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: wanted.ack_wait,
                max_deliver: -1,
                max_ack_pending: 20_000,
                deliver_policy,
                filter_subjects: filters,
                ..Default::default()
            };
            stream
                .create_consumer(config)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create consumer {name} on {}: {e}", wanted.producer))
        }
        Err(e) => Err(anyhow::anyhow!("cannot find consumer {name} on {}: {e}", wanted.producer)),
    }
}

/// The users of a NATS server with permissions: each service may publish only its own
/// subjects (plus revocations, the simulated clock and the JetStream API its consumers need);
/// `admin` is for the command line.
pub const NATS_USERS: [&str; 6] = ["intake", "assignment", "verification", "notification", "publication", "admin"];

/// A nats-server configuration with a user per service and their permissions. `passwords`
/// gives each user of [`NATS_USERS`] its password.
pub fn server_config(
    namespace: &str,
    port: u16,
    store_dir: &str,
    passwords: &std::collections::BTreeMap<String, String>,
) -> String {
    format!(
        "# Generated by `skyledger nats-config`: one user per service, each publishing only its own subjects.\n\
         listen: 127.0.0.1:{port}\njetstream {{ store_dir: {} }}\n{}",
        quote(store_dir),
        authorization(namespace, passwords)
    )
}

/// A string as a quoted value of nats-server's configuration.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One node of a NATS cluster: its client port, its route port and its store.
pub struct ClusterNode {
    pub name: String,
    pub port: u16,
    pub cluster_port: u16,
    pub store_dir: String,
}

/// The configuration of `nodes[i]`: JetStream on its own store, routes to every node (its own
/// route is ignored by the server), and the users when `authorization` is given. Streams made
/// with `stream_replicas = nodes.len()` then survive the loss of a minority of the nodes.
pub fn cluster_node_config(nodes: &[ClusterNode], i: usize, authorization: Option<&str>) -> String {
    let node = &nodes[i];
    let routes: Vec<String> = nodes.iter().map(|n| format!("nats-route://127.0.0.1:{}", n.cluster_port)).collect();
    format!(
        "# Node {} of {} of a local NATS cluster.\n\
         server_name: {}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: {} }}\n\
         cluster {{\n  name: skyledger\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n{}",
        i + 1,
        nodes.len(),
        quote(&node.name),
        node.port,
        quote(&node.store_dir),
        node.cluster_port,
        routes.join(", "),
        authorization.unwrap_or_default()
    )
}

/// The `authorization` block alone, to include in a cluster's own configuration.
pub fn authorization(namespace: &str, passwords: &std::collections::BTreeMap<String, String>) -> String {
    let shared_publish = [
        format!("{namespace}.auth.>"),
        format!("{namespace}.clock.>"),
        "$JS.API.>".to_string(),
        "$JS.ACK.>".to_string(),
        "_INBOX.>".to_string(),
    ];
    let mut users = String::new();
    for user in NATS_USERS {
        let publish: Vec<String> = if user == "admin" {
            shared_publish.to_vec()
        } else {
            let own = [format!("{namespace}.{user}.>"), format!("{namespace}.deadletter.{user}")];
            own.into_iter().chain(shared_publish.iter().cloned()).collect()
        };
        let publish: Vec<String> = publish.iter().map(|s| quote(s)).collect();
        let subscribe = [quote("_INBOX.>"), quote(&format!("{namespace}.>"))];
        users.push_str(&format!(
            "    {{ user: {}, password: {}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}\n",
            quote(user),
            quote(passwords.get(user).map(String::as_str).unwrap_or_default()),
            publish.join(", "),
            subscribe.join(", "),
        ));
    }
    format!("authorization {{\n  users = [\n{users}  ]\n}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nats_url_names_one_server_or_a_clusters_seeds() {
        assert_eq!(server_addrs("nats://127.0.0.1:4222").unwrap().len(), 1);
        let seeds = server_addrs("nats://a:4222, nats://b:4222,nats://c:4222").unwrap();
        assert_eq!(seeds.iter().map(|a| a.host().to_string()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(server_addrs("").is_err());
        assert!(server_addrs("nats://a:4222,http://b").is_err());
    }

    #[test]
    fn each_cluster_node_routes_to_every_node_and_keeps_its_own_store() {
        let nodes: Vec<ClusterNode> = (0..3)
            .map(|i| ClusterNode {
                name: format!("n{}", i + 1),
                port: 4231 + i,
                cluster_port: 6231 + i,
                store_dir: format!("/var/nats/store-{}", i + 1),
            })
            .collect();
        let config = cluster_node_config(&nodes, 1, Some("authorization { }"));
        assert!(config.contains("server_name: \"n2\"\nlisten: 127.0.0.1:4232\n"), "{config}");
        assert!(config.contains("store_dir: \"/var/nats/store-2\""), "{config}");
        assert!(config.contains("listen: 127.0.0.1:6232"), "{config}");
        for port in 6231..6234 {
            assert!(config.contains(&format!("nats-route://127.0.0.1:{port}")), "{config}");
        }
        assert!(config.ends_with("authorization { }"), "{config}");
    }
}
