//! The test harness: a private nats-server, a fresh database, the five services as real
//! processes on free ports, a token mint, and a webhook receiver that records what it gets.
//! Tests never share state with each other or with a running stack.

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tempfile::TempDir;

use crate::auth::{Role, TokenSigner};

pub mod postgres;
pub mod smtp;
pub use postgres::{PostgresServer, StopMode};
pub use smtp::{Mail, SmtpReceiver};

pub const SERVICES: [&str; 5] = ["intake", "assignment", "verification", "notification", "publication"];

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("local addr").port()
}

/// Polls `check` until it gives `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A nats-server of the test's own, with JetStream and its own store directory. The binary is
/// `$NATS_SERVER_BIN`, else `nats-server` on the PATH.
pub struct NatsServer {
    pub port: u16,
    dir: TempDir,
    process: Option<Child>,
    /// The users and their passwords, for a server with permissions.
    pub passwords: Option<std::collections::BTreeMap<String, String>>,
    /// Started from `nats.conf` in its directory (users, or a cluster node) rather than flags.
    configured: bool,
}

impl NatsServer {
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            process: None,
            passwords: None,
            configured: false,
        };
        server.launch();
        server
    }

    /// A server with a user per service, each publishing only its own subjects of `namespace`.
    pub fn start_with_users(namespace: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let passwords: std::collections::BTreeMap<String, String> = crate::messaging::NATS_USERS
            .iter()
            .map(|u| (u.to_string(), uuid::Uuid::new_v4().simple().to_string()))
            .collect();
        let store = dir.path().join("store");
        let config = crate::messaging::server_config(namespace, port, &store.to_string_lossy(), &passwords);
        std::fs::write(dir.path().join("nats.conf"), config).expect("write nats.conf");
        let mut server = Self { port, dir, process: None, passwords: Some(passwords), configured: true };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let store = self.dir.path().join("store");
        let log = self.dir.path().join("nats.log");
        let mut command = Command::new(&bin);
        if self.configured {
            command.arg("-c").arg(self.dir.path().join("nats.conf"));
        } else {
            command.args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"]).arg(&store);
        }
        let child = command
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (set NATS_SERVER_BIN)"));
        self.process = Some(child);
        assert!(wait_for_port(self.port, Duration::from_secs(10)), "nats-server did not start; see {}", log.display());
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A client for the test itself: the `admin` user where the server has users.
    pub async fn client(&self) -> async_nats::Client {
        let options = match &self.passwords {
            Some(p) => async_nats::ConnectOptions::with_user_and_password("admin".into(), p["admin"].clone()),
            None => async_nats::ConnectOptions::new(),
        };
        options.connect(self.url()).await.expect("connect to the test's NATS")
    }

    /// The JetStream store directory (what a backup copies with the server stopped).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// SIGTERM: the server flushes its store and exits; `restart` starts it again.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on its port (nothing happens when it runs).
    pub fn start_again(&mut self) {
        if self.process.is_none() {
            self.launch();
        }
    }

    /// SIGKILLs the server; its store stays for `restart`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

/// A client (no user) of the servers in `urls`, comma-separated, failing over between them.
async fn connect_to(urls: &str) -> async_nats::Client {
    let addrs = crate::messaging::server_addrs(urls).expect("NATS URLs");
    async_nats::ConnectOptions::new().connect(addrs).await.expect("connect to the test's NATS")
}

/// A JetStream cluster of nats-servers on this machine, each with its own store and routes to
/// the others; streams made with as many replicas as nodes survive the loss of a minority.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes (3 for a quorum that survives one loss); `wait_for_jetstream` tells
    /// when they have elected a meta leader and streams can be made.
    pub fn start(size: usize) -> Self {
        let dirs: Vec<TempDir> = (0..size).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let specs: Vec<crate::messaging::ClusterNode> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| crate::messaging::ClusterNode {
                name: format!("n{}", i + 1),
                port: free_port(),
                cluster_port: free_port(),
                store_dir: dir.path().join("store").to_string_lossy().into_owned(),
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, dir) in dirs.into_iter().enumerate() {
            let config = crate::messaging::cluster_node_config(&specs, i, None);
            std::fs::write(dir.path().join("nats.conf"), config).expect("write nats.conf");
            let mut node = NatsServer { port: specs[i].port, dir, process: None, passwords: None, configured: true };
            node.launch();
            nodes.push(node);
        }
        Self { nodes }
    }

    /// Every node's URL, comma-separated: what services are given as `nats_url`.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// A client that fails over between the nodes.
    pub async fn client(&self) -> async_nats::Client {
        connect_to(&self.urls()).await
    }

    /// Waits until JetStream answers through the cluster (a meta leader is elected).
    pub async fn wait_for_jetstream(&self) {
        let js = async_nats::jetstream::new(self.client().await);
        eventually("the NATS cluster's JetStream", Duration::from_secs(60), || async {
            js.query_account().await.ok().map(|_| ())
        })
        .await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A database of the test's own on the machine's Postgres (`$SKYLEDGER_TEST_DATABASE_URL`, else
/// `postgres://postgres@127.0.0.1:5432/postgres`), dropped at the end.
pub struct TestDatabase {
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = std::env::var("SKYLEDGER_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        Self::create_on(&admin_url).await
    }

    /// A database of the test's own on the cluster whose maintenance database is `admin_url`
    /// (a [`PostgresServer`] of the test's own, say).
    pub async fn create_on(admin_url: &str) -> Self {
        let admin_url = admin_url.to_string();
        let name = format!("skyledger_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin_url).await.expect("connect to Postgres for tests");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        Self { name, admin_url }
    }

    pub fn url(&self) -> String {
        match self.admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{}", self.name),
            None => panic!("bad database URL {}", self.admin_url),
        }
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url()).await.expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop is synchronous; a thread of its own runs the async drop.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// One service running as a `skyledger serve` process.
pub struct ServiceProcess {
    pub name: &'static str,
    pub port: u16,
    process: Option<Child>,
    log: PathBuf,
}

impl ServiceProcess {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the graceful exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.process.take()?;
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().ok()
    }

    /// Whether the process is still running (it has not exited by itself or been killed).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// The whole log of the service (every run of it: a restart appends).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings a test may change before the stack starts.
#[derive(Clone)]
pub struct StackOptions {
    /// `SKYLEDGER__…` variables added to every service's environment.
    pub env: Vec<(String, String)>,
    /// Start only these services (a benchmark of one service); all five when `None`.
    pub only: Option<Vec<&'static str>>,
    /// Run NATS with a user per service and its permissions; each service connects as its own.
    pub nats_users: bool,
    /// The maintenance database of the cluster the test's database is made on (a private
    /// [`PostgresServer`]'s `admin_url()`); the machine's Postgres when `None`.
    pub database_admin_url: Option<String>,
    /// Also start the one origin (`serve workbench`): the workbench's pages and every API by
    /// path; its URL is `Stack::origin()`.
    pub workbench: bool,
    /// Nodes of NATS: 1, or a cluster of 3 whose streams keep 3 replicas (`Stack::cluster`).
    pub nats_nodes: usize,
    /// Each service on a database of its own (`Stack::database_of`), rather than five schemas in
    /// one.
    pub database_per_service: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        // Short gathering windows keep the tests quick without sleeping for correctness.
        Self {
            env: vec![
                ("SKYLEDGER__ASSIGNMENT__GATHERING_WINDOW_MILLIS".into(), "300".into()),
                ("SKYLEDGER__PUBLICATION__CHECKPOINT_INTERVAL_MILLIS".into(), "300".into()),
                // Several stacks share the machine's Postgres (100 connections by default).
                ("SKYLEDGER__DATABASE_MAX_CONNECTIONS".into(), "5".into()),
            ],
            only: None,
            nats_users: false,
            database_admin_url: None,
            workbench: false,
            nats_nodes: 1,
            database_per_service: false,
        }
    }
}

/// The five services on a private NATS server (or cluster) and a fresh database (or one each).
pub struct Stack {
    /// The NATS server; on a cluster, its first node.
    pub nats: NatsServer,
    /// The cluster's other nodes (empty on one server).
    pub more_nats: Vec<NatsServer>,
    pub db: TestDatabase,
    /// Each service's own database, where `database_per_service` (else every service uses `db`).
    pub databases: HashMap<&'static str, TestDatabase>,
    pub namespace: String,
    pub signer: TokenSigner,
    pub http: reqwest::Client,
    pub services: HashMap<&'static str, ServiceProcess>,
    /// Further instances started with `add_instance`.
    pub instances: Vec<ServiceProcess>,
    bin: PathBuf,
    options: StackOptions,
    dir: TempDir,
    /// Every service's port, chosen before any starts: the workbench fronts them all.
    ports: HashMap<&'static str, u16>,
}

impl Stack {
    /// Starts everything and waits until every service is ready. `bin` is the `skyledger`
    /// binary (`env!("CARGO_BIN_EXE_skyledger")` in the project's tests).
    pub async fn start(bin: &Path, options: StackOptions) -> Self {
        crate::install_crypto_provider();
        let namespace = format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let (nats, more_nats) = if options.nats_nodes > 1 {
            assert!(!options.nats_users, "a cluster with users is not built in tests");
            let cluster = NatsCluster::start(options.nats_nodes);
            cluster.wait_for_jetstream().await;
            let mut nodes = cluster.nodes.into_iter();
            (nodes.next().expect("a node"), nodes.collect())
        } else if options.nats_users {
            (NatsServer::start_with_users(&namespace), Vec::new())
        } else {
            (NatsServer::start(), Vec::new())
        };
        let new_database = || async {
            match &options.database_admin_url {
                Some(admin_url) => TestDatabase::create_on(admin_url).await,
                None => TestDatabase::create().await,
            }
        };
        let db = new_database().await;
        let mut databases = HashMap::new();
        if options.database_per_service {
            for service in SERVICES {
                databases.insert(service, new_database().await);
            }
        }
        let mut stack = Self {
            nats,
            more_nats,
            db,
            databases,
            namespace,
            signer: TokenSigner::generate(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client"),
            services: HashMap::new(),
            instances: Vec::new(),
            bin: bin.to_path_buf(),
            options,
            dir: tempfile::tempdir().expect("tempdir"),
            ports: SERVICES.iter().chain(["workbench"].iter()).map(|s| (*s, free_port())).collect(),
        };
        // Notification signs people's tokens with the deployment's key.
        std::fs::write(stack.dir.path().join("signing.key"), stack.signer.seed_hex()).expect("write the signing key");
        let mut chosen: Vec<&'static str> = match &stack.options.only {
            Some(only) => only.clone(),
            None => SERVICES.to_vec(),
        };
        if stack.options.workbench {
            chosen.push("workbench");
        }
        for name in &chosen {
            let port = stack.ports[name];
            let process = stack.spawn(name, port);
            stack.services.insert(name, process);
        }
        for name in &chosen {
            stack.wait_ready(name).await;
        }
        stack
    }

    fn spawn(&self, name: &'static str, port: u16) -> ServiceProcess {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("service log");
        let mut command = Command::new(&self.bin);
        command
            .args(["serve", name])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", std::env::var("SKYLEDGER_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("SKYLEDGER_CONFIG", self.dir.path().join("none.toml"))
            .env("SKYLEDGER__DATABASE_URL", self.database_of(name).url())
            .env("SKYLEDGER__NATS_URL", self.nats_url())
            .env("SKYLEDGER__STREAM_REPLICAS", (1 + self.more_nats.len()).to_string())
            .env("SKYLEDGER__NAMESPACE", &self.namespace)
            .env("SKYLEDGER__AUTH__PUBLIC_KEY", self.signer.public_key_hex())
            .env("SKYLEDGER__AUTH__SIGNING_KEY_FILE", self.dir.path().join("signing.key"))
            .env("SKYLEDGER__NOTIFICATION__WORKBENCH_URL", format!("http://127.0.0.1:{}", self.ports["workbench"]))
            .env("SKYLEDGER__PUBLICATION__PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}"))
            .env("SKYLEDGER__PUBLICATION__CHECKPOINT_KEY_FILE", self.dir.path().join("publication-log.key"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        // Every service's address (the workbench fronts them all), then this one's own port.
        for (service, service_port) in &self.ports {
            command.env(format!("SKYLEDGER__{}__LISTEN", service.to_uppercase()), format!("127.0.0.1:{service_port}"));
        }
        command.env(format!("SKYLEDGER__{}__LISTEN", name.to_uppercase()), format!("127.0.0.1:{port}"));
        for (key, value) in &self.options.env {
            command.env(key, value);
        }
        if let Some(passwords) = &self.nats.passwords {
            command.env("SKYLEDGER__NATS_USER", name);
            command.env("SKYLEDGER__NATS_PASSWORD", passwords.get(name).cloned().unwrap_or_default());
        }
        for (key, value) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
            command.env(key, value);
        }
        let process = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        ServiceProcess { name, port, process: Some(process), log }
    }

    /// The database a service uses: its own, or the one all share.
    pub fn database_of(&self, service: &str) -> &TestDatabase {
        self.databases.get(service).unwrap_or(&self.db)
    }

    /// What services are given as `nats_url`: the server, or every node of the cluster.
    pub fn nats_url(&self) -> String {
        std::iter::once(&self.nats).chain(&self.more_nats).map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// Node `i` of the NATS cluster (0 is `nats`).
    pub fn nats_node(&mut self, i: usize) -> &mut NatsServer {
        if i == 0 { &mut self.nats } else { &mut self.more_nats[i - 1] }
    }

    /// A client of the test's own that fails over between the cluster's nodes.
    pub async fn nats_client(&self) -> async_nats::Client {
        connect_to(&self.nats_url()).await
    }

    pub async fn wait_ready(&self, name: &str) {
        let service = &self.services[name];
        let url = format!("{}/readyz", service.url());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if self.http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "{name} not ready; its log ends:\n{}", service.log_tail(30));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, service: &str) -> String {
        self.services[service].url()
    }

    /// The one origin people use (started with `StackOptions::workbench`).
    pub fn origin(&self) -> String {
        self.url("workbench")
    }

    /// Starts one more instance of a service (sharing its consumers) on a port of its own and
    /// waits until it is ready; it stops with the stack.
    pub async fn add_instance(&mut self, service: &'static str) -> String {
        let process = self.spawn(service, free_port());
        let url = process.url();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.http.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "the second {service} is not ready:\n{}", process.log_tail(30));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.instances.push(process);
        url
    }

    /// SIGKILLs a service.
    pub fn kill(&mut self, service: &str) {
        self.services.get_mut(service).expect("known service").kill();
    }

    /// Starts a killed or stopped service again on its port and waits until it is ready.
    pub async fn restart(&mut self, service: &'static str) {
        let port = self.services[service].port;
        self.services.get_mut(service).expect("known service").kill();
        let process = self.spawn(service, port);
        self.services.insert(service, process);
        self.wait_ready(service).await;
    }

    pub fn token(&self, role: Role, team: Option<&str>, jurisdiction: Option<&str>) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.signer.issue(role, team.map(Into::into), jurisdiction.map(Into::into), now, 3600).expect("token")
    }

    pub fn admin(&self) -> String {
        self.token(Role::Admin, None, None)
    }

    /// Every service's log tail, for a failing test's message.
    pub fn logs(&self) -> String {
        SERVICES
            .iter()
            .filter_map(|s| self.services.get(s))
            .map(|s| format!("--- {} ---\n{}\n", s.name, s.log_tail(15)))
            .collect()
    }
}

/// A process's resident memory in KiB: `VmRSS` now, or `VmHWM` (its peak so far); 0 when the
/// process is gone.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

#[derive(Clone, Default)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; after them, 204.
    script: Arc<Mutex<Vec<u16>>>,
    /// How long to wait before answering (after recording), so a test can kill a sender while
    /// its request is in flight.
    delay: Arc<Mutex<Duration>>,
}

/// A real HTTP server that records every request and answers as scripted.
pub struct WebhookReceiver {
    pub url: String,
    state: ReceiverState,
}

impl WebhookReceiver {
    pub async fn start(script: Vec<u16>) -> Self {
        let state = ReceiverState {
            received: Arc::default(),
            script: Arc::new(Mutex::new(script)),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
        };
        let app = axum::Router::new().fallback(receive).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("receiver lock").clone()
    }

    /// Answers each request only after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().expect("delay lock") = delay;
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    state.received.lock().expect("receiver lock").push(Received {
        at: Instant::now(),
        path: uri.path().to_string(),
        headers,
        body,
    });
    let status = {
        let mut script = state.script.lock().expect("script lock");
        if script.is_empty() { 204 } else { script.remove(0) }
    };
    let delay = *state.delay.lock().expect("delay lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT)
}
