//! Postgres: the pool, creating the database when it is missing, and migrations that run each
//! service's own files plus the plumbing tables (outbox, inbox, dead letters) inside the
//! service's schema, with the migrations table there too.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgPool, SqlSafeStr};

/// Connects, creating the database first if it does not exist (a fresh machine, a test).
pub async fn connect(database_url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    // Plans made for the statement's actual arguments: a generic plan chosen while a table was
    // nearly empty (an inbox's order table, say) may read the whole table for every batch
    // later. The services' statements are few and multi-row, so planning each is cheap. And
    // random reads priced as what they are here (the working set is cached, the disk is
    // solid-state): a thousand-row batch joins its rows by index, not by scanning the table.
    let options = PgConnectOptions::from_str(database_url)?
        .options([("plan_cache_mode", "force_custom_plan"), ("random_page_cost", "1.1")]);
    ensure_database(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Whether an error means the database is away for now (down, restarting, unreachable, the pool
/// out of connections) rather than that the statement is wrong: worth retrying, answered 503.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // Serialisation failures, deadlocks, the server shutting down or starting up
        // (57P01-57P05), connection exceptions (08xxx), too many connections (53300).
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c == "40001" || c == "40P01" || c == "53300" || c.starts_with("57P") || c.starts_with("08")
        }),
        _ => false,
    }
}

/// Whether any cause in an error's chain is a transient database error.
pub fn is_transient_chain(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.downcast_ref::<sqlx::Error>().is_some_and(is_transient))
}

async fn ensure_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else { return Ok(()) };
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(AssertSqlSafe(create)).execute(&mut admin).await {
            Ok(_) => {}
            // Another service created it at the same moment.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Versions below this are the plumbing's; a service's own migration files start at 100.
const FIRST_SERVICE_VERSION: i64 = 100;

fn plumbing_migrations(schema: &str) -> Vec<Migration> {
    let sql = format!(
        r#"
CREATE TABLE {s}.outbox (
    position     bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    nats_subject text NOT NULL,
    -- The CloudEvent as sent, kept as text: the relay sends it as it is.
    payload      text NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX outbox_unsent ON {s}.outbox (position) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON {s}.outbox (sent_at);

-- Wake the relay when a transaction that wrote events commits.
CREATE FUNCTION {s}.outbox_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{s}_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_wake AFTER INSERT ON {s}.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.outbox_wake();

CREATE TABLE {s}.inbox (
    event_id    uuid PRIMARY KEY,
    stream      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON {s}.inbox (received_at);

CREATE TABLE {s}.dead_letters (
    id              bigserial PRIMARY KEY,
    stream          text NOT NULL,
    stream_sequence bigint NOT NULL,
    nats_subject    text NOT NULL,
    event_id        uuid,
    event_type      text,
    payload         bytea NOT NULL,
    reason          text NOT NULL,
    deliveries      bigint NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at     timestamptz,
    UNIQUE (stream, stream_sequence)
);
"#,
        s = schema
    );
    let audit = format!(
        r#"
-- Who did what, when, from where: every write and every refused request.
CREATE TABLE {s}.audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    method       text NOT NULL,
    route        text NOT NULL,
    status       integer NOT NULL,
    role         text,
    team         text,
    jurisdiction text,
    token_id     uuid,
    remote       text
);
CREATE INDEX audit_at ON {s}.audit (at);
"#,
        s = schema
    );
    let migration = |version, description, sql: String| {
        Migration::new(
            version,
            Cow::Borrowed(description),
            MigrationType::Simple,
            AssertSqlSafe(sql).into_sql_str(),
            false,
        )
    };
    let replays = format!(
        r#"
-- A dead letter is replayed by its own consumer when the admin asks.
ALTER TABLE {s}.dead_letters
    ADD COLUMN replay_requested_at timestamptz,
    ADD COLUMN replay_outcome      text;
"#,
        s = schema
    );
    let gate = format!(
        r#"
-- The highest counter applied of each producer's events about each problem, so an event that
-- comes before the one creating its problem waits for it, however many instances share the
-- consumer.
CREATE TABLE {s}.sequence_gate (
    producer text NOT NULL,
    subject  text NOT NULL,
    last_seq bigint NOT NULL,
    PRIMARY KEY (producer, subject)
);
"#,
        s = schema
    );
    let outbox_created = format!(
        r#"
-- Pruning and resending go by when an event was written, which never changes, so marking an
-- event sent updates one index fewer. Event ids are fresh UUIDv7s that nothing looks up here;
-- their uniqueness index only cost time on every write.
DROP INDEX {s}.outbox_sent_at;
ALTER TABLE {s}.outbox DROP CONSTRAINT outbox_event_id_key;
CREATE INDEX outbox_created_at ON {s}.outbox (created_at);
"#,
        s = schema
    );
    let event_path = format!(
        r#"
-- The relay is woken in-process after a commit: a NOTIFY per commit took Postgres's global
-- notify-queue lock until every event-writing commit was flushed.
DROP TRIGGER outbox_wake ON {s}.outbox;
DROP FUNCTION {s}.outbox_wake();

-- Where each consumer had acknowledged everything up to, stored beside the state: a consumer
-- made anew starts after it, and inbox rows behind it can go.
CREATE TABLE {s}.stream_positions (
    stream        text PRIMARY KEY,
    acked_through bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {s}.inbox ADD COLUMN stream_seq bigint NOT NULL DEFAULT 0;

-- The last counter applied of each producer's events about each problem.
CREATE TABLE {s}.problem_order (
    producer   text NOT NULL,
    problem_id uuid NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (producer, problem_id)
);
INSERT INTO {s}.problem_order (producer, problem_id, last_seq)
    SELECT producer, subject::uuid, last_seq FROM {s}.sequence_gate
    WHERE subject ~ '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$';
DROP TABLE {s}.sequence_gate;
"#,
        s = schema
    );
    let people = format!(
        r#"
-- A person's sign-in token names them: the audit log says who, not only which role.
ALTER TABLE {s}.audit ADD COLUMN person_id uuid, ADD COLUMN person text;
"#,
        s = schema
    );
    vec![
        migration(1, "plumbing: outbox, inbox, dead letters", sql),
        migration(2, "plumbing: audit log", audit),
        migration(3, "plumbing: dead-letter replays", replays),
        migration(4, "plumbing: per-problem order", gate),
        migration(5, "plumbing: outbox by creation time", outbox_created),
        migration(6, "plumbing: ordered, exactly-once event path", event_path),
        migration(7, "plumbing: the audit log names people", people),
    ]
}

/// Runs the plumbing migrations and the service's own (from `sqlx::migrate!`) in the schema
/// `schema`, keeping the migrations table there too, so services never share one.
pub async fn migrate(pool: &PgPool, schema: &str, service_migrations: &Migrator) -> anyhow::Result<()> {
    if let Some(m) = service_migrations.iter().find(|m| m.version < FIRST_SERVICE_VERSION) {
        anyhow::bail!("migration {} of {schema} must be numbered from {FIRST_SERVICE_VERSION}", m.version);
    }
    let mut all = plumbing_migrations(schema);
    all.extend(service_migrations.iter().cloned());
    let mut migrator = Migrator::with_migrations(all);
    migrator.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    migrator.create_schema(schema.to_string());
    migrator.run(pool).await?;
    Ok(())
}
