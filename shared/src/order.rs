//! The producer's side of per-problem order: every event a service publishes about a problem
//! takes the problem's next counter (`problem_seq`) and says the counter of the latest earlier
//! event of each kind (`previous`), from the producer's own row for the problem.

use std::collections::{BTreeMap, HashMap};

use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use crate::events::{EventKind, Previous};

/// The counter of the latest event of each kind.
type Counters = BTreeMap<String, i64>;

/// A problem's place in its producer's order, for the event about to be published.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    pub problem_seq: i64,
    pub previous: Previous,
}

/// Advances the counters of `problems` for an event of `kind`, in `table` (the producer's own
/// table, schema-qualified, with columns `problem_id`, `problem_seq` and `seq_by_kind jsonb`),
/// locking their rows until the transaction ends. Problems without a row are left out.
pub async fn advance(
    conn: &mut PgConnection,
    table: &'static str,
    problems: &[Uuid],
    kind: EventKind,
) -> sqlx::Result<HashMap<Uuid, Next>> {
    if problems.is_empty() {
        return Ok(HashMap::new());
    }
    // The rows are locked in one order, so two writers never wait on each other crosswise.
    let sql = format!(
        "WITH before AS (SELECT problem_id, seq_by_kind FROM {table} WHERE problem_id = ANY($1)
                         ORDER BY problem_id FOR UPDATE)
         UPDATE {table} t SET problem_seq = t.problem_seq + 1,
                              seq_by_kind = t.seq_by_kind || jsonb_build_object($2::text, t.problem_seq + 1)
         FROM before WHERE t.problem_id = before.problem_id
         RETURNING t.problem_id, t.problem_seq, before.seq_by_kind"
    );
    let rows: Vec<(Uuid, i64, Json<Counters>)> =
        sqlx::query_as(AssertSqlSafe(sql)).bind(problems).bind(kind.name).fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(id, problem_seq, Json(before))| (id, Next { problem_seq, previous: Previous(before) }))
        .collect())
}

/// [`advance`] for one problem; none when it has no row.
pub async fn advance_one(
    conn: &mut PgConnection,
    table: &'static str,
    problem: Uuid,
    kind: EventKind,
) -> sqlx::Result<Option<Next>> {
    Ok(advance(conn, table, &[problem], kind).await?.remove(&problem))
}
