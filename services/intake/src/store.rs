//! Intake's SQL, all in the `intake` schema.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{CityPackageRequest, EarlierEntry, RoundRequest, TeamRequest};

pub async fn upsert_round(conn: &mut PgConnection, id: &str, round: &RoundRequest) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.rounds (id, starts_on, ends_on, kind, cities) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET starts_on = $2, ends_on = $3, kind = $4, cities = $5, updated_at = now()",
    )
    .bind(id)
    .bind(round.starts_on)
    .bind(round.ends_on)
    .bind(&round.kind)
    .bind(&round.cities)
    .execute(conn)
    .await?;
    Ok(())
}

/// A round's cities, if the round exists.
pub async fn round_cities(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<Vec<String>>> {
    sqlx::query_scalar("SELECT cities FROM intake.rounds WHERE id = $1").bind(id).fetch_optional(conn).await
}

pub async fn upsert_team(conn: &mut PgConnection, id: &str, team: &TeamRequest) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.teams (id, home_province, members) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET home_province = $2, members = $3, updated_at = now()",
    )
    .bind(id)
    .bind(&team.home_province)
    .bind(sqlx::types::Json(&team.members))
    .execute(conn)
    .await?;
    Ok(())
}

/// A team's home province and how many members it has, if the team exists.
pub async fn team_province_and_members(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<(String, i32)>> {
    sqlx::query_as("SELECT home_province, jsonb_array_length(members) FROM intake.teams WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn upsert_round_team(
    conn: &mut PgConnection,
    round: &str,
    team: &str,
    cities: &[String],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.round_teams (round_id, team_id, cities) VALUES ($1, $2, $3)
         ON CONFLICT (round_id, team_id) DO UPDATE SET cities = $3, updated_at = now()",
    )
    .bind(round)
    .bind(team)
    .bind(cities)
    .execute(conn)
    .await?;
    Ok(())
}

/// The first answers given for those of `ids` already recorded.
pub async fn inspection_results(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<(Uuid, Value)>> {
    sqlx::query_as("SELECT id, result FROM intake.inspections WHERE id = ANY($1)").bind(ids).fetch_all(conn).await
}

/// Those of `rounds` that exist.
pub async fn known_rounds(conn: &mut PgConnection, rounds: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT id FROM intake.rounds WHERE id = ANY($1)").bind(rounds).fetch_all(conn).await
}

/// The cities `team` covers in each of `rounds` it is assigned to.
pub async fn coverage(
    conn: &mut PgConnection,
    team: &str,
    rounds: &[String],
) -> sqlx::Result<Vec<(String, Vec<String>)>> {
    sqlx::query_as("SELECT round_id, cities FROM intake.round_teams WHERE team_id = $1 AND round_id = ANY($2)")
        .bind(team)
        .bind(rounds)
        .fetch_all(conn)
        .await
}

/// The inspection each of `ids` already belongs to, for those taken.
pub async fn problem_owners(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as("SELECT id, inspection_id FROM intake.problems WHERE id = ANY($1)").bind(ids).fetch_all(conn).await
}

/// Serialises reports of the same sites and categories until the transaction ends, so two
/// concurrent batches cannot both make new entries of one. `keys` come sorted, so batches take
/// their locks in the same order and never deadlock.
pub async fn lock_site_categories(conn: &mut PgConnection, keys: &[(String, String)]) -> sqlx::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let joined: Vec<String> = keys.iter().map(|(site, category)| format!("{site}|{category}")).collect();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n")
        .bind(&joined)
        .execute(conn)
        .await?;
    Ok(())
}

/// The latest ledger entry (not a duplicate) of each site and category, and whether it is closed.
pub async fn latest_entries(
    conn: &mut PgConnection,
    keys: &[(String, String)],
) -> sqlx::Result<Vec<((String, String), EarlierEntry)>> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let unique: std::collections::BTreeSet<&(String, String)> = keys.iter().collect();
    let (sites, categories): (Vec<String>, Vec<String>) = unique.into_iter().cloned().unzip();
    // One index probe per key (problems_site_category), however large the ledger grows.
    let rows: Vec<(String, String, Uuid, Option<bool>)> = sqlx::query_as(
        "SELECT k.site_key, k.category, e.id, e.closed
         FROM unnest($1::text[], $2::text[]) AS k(site_key, category)
         CROSS JOIN LATERAL (
             SELECT p.id, s.closed FROM intake.problems p
             LEFT JOIN intake.problem_status s ON s.problem_id = p.id
             WHERE p.site_key = k.site_key AND p.category = k.category
               AND p.duplicate_of IS NULL AND p.withdrawn_at IS NULL
             ORDER BY p.reported_at DESC, p.id DESC LIMIT 1) e",
    )
    .bind(&sites)
    .bind(&categories)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(site, category, problem_id, closed)| {
            ((site, category), EarlierEntry { problem_id, closed: closed.unwrap_or(false) })
        })
        .collect())
}

pub struct InspectionRow {
    pub id: Uuid,
    pub round_id: String,
    pub team_id: String,
    pub city_code: String,
    pub county_code: Option<String>,
    pub checked_at: time::OffsetDateTime,
    pub site_key: String,
    pub site: Value,
    pub result: Value,
}

pub async fn insert_inspections(conn: &mut PgConnection, rows: &[InspectionRow]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO intake.inspections (id, round_id, team_id, city_code, county_code, checked_at, site_key, site, result)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[],
                              $8::jsonb[], $9::jsonb[])",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.round_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.team_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.city_code.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.county_code.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.checked_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.site_key.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.site.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.result.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

pub struct ProblemRow {
    pub id: Uuid,
    pub inspection_id: Uuid,
    pub round_id: String,
    pub team_id: String,
    pub city_code: String,
    pub county_code: Option<String>,
    pub site_key: String,
    pub category: String,
    pub severity: String,
    pub description: String,
    pub evidence: Value,
    pub duplicate_of: Option<Uuid>,
    pub rebound_of: Option<Uuid>,
}

pub async fn insert_problems(conn: &mut PgConnection, rows: &[ProblemRow]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO intake.problems (id, inspection_id, round_id, team_id, city_code, county_code, site_key, category,
                                      severity, description, evidence, duplicate_of, rebound_of)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::uuid[], $13::uuid[])",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.inspection_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.round_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.team_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.city_code.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.county_code.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.site_key.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.category.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.severity.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.description.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.evidence.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.duplicate_of).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.rebound_of).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts items refused for a team in a round, for its quality figures.
pub async fn count_refusals(conn: &mut PgConnection, round: &str, team: &str, refused: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.refusals (round_id, team_id, refused) VALUES ($1, $2, $3)
         ON CONFLICT (round_id, team_id) DO UPDATE SET refused = intake.refusals.refused + $3",
    )
    .bind(round)
    .bind(team)
    .bind(refused)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records whether problems are closed (each problem at most once), unless a later event of
/// verification's already said.
pub async fn set_problem_status(conn: &mut PgConnection, statuses: &[(Uuid, bool, i64)]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = statuses.iter().map(|s| s.0).collect();
    let closed: Vec<bool> = statuses.iter().map(|s| s.1).collect();
    let seqs: Vec<i64> = statuses.iter().map(|s| s.2).collect();
    sqlx::query(
        "INSERT INTO intake.problem_status (problem_id, closed, problem_seq)
         SELECT * FROM unnest($1::uuid[], $2::bool[], $3::bigint[])
         ON CONFLICT (problem_id) DO UPDATE SET closed = EXCLUDED.closed, problem_seq = EXCLUDED.problem_seq
         WHERE intake.problem_status.problem_seq < EXCLUDED.problem_seq",
    )
    .bind(&ids)
    .bind(&closed)
    .bind(&seqs)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn upsert_package(conn: &mut PgConnection, city: &str, p: &CityPackageRequest) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.city_packages (city_code, ministry_department, affiliated_unit, provincial_department)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (city_code) DO UPDATE SET ministry_department = $2, affiliated_unit = $3, provincial_department = $4,
             updated_at = now()",
    )
    .bind(city)
    .bind(&p.ministry_department)
    .bind(&p.affiliated_unit)
    .bind(&p.provincial_department)
    .execute(conn)
    .await?;
    Ok(())
}

/// A reported problem as the campaign office corrects it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub id: Uuid,
    pub city_code: String,
    pub duplicate_of: Option<Uuid>,
    pub withdrawn: bool,
}

pub async fn entry_for_update(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Entry>> {
    sqlx::query_as(
        "SELECT id, city_code, duplicate_of, withdrawn_at IS NOT NULL AS withdrawn FROM intake.problems WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn withdraw(conn: &mut PgConnection, id: Uuid, reason: &str, at: time::OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query("UPDATE intake.problems SET withdrawn_at = $2, withdrawn_why = $3 WHERE id = $1")
        .bind(id)
        .bind(at)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn merge(conn: &mut PgConnection, id: Uuid, into: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE intake.problems SET duplicate_of = $2, merged_why = $3 WHERE id = $1")
        .bind(id)
        .bind(into)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Per team in a round: site checks, ledger entries, duplicates, withdrawn reports, refused items.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct TeamQuality {
    pub team: String,
    pub checks: i64,
    pub problems: i64,
    pub duplicates: i64,
    pub withdrawn: i64,
    pub refused: i64,
}

pub async fn quality(conn: &mut PgConnection, round: &str) -> sqlx::Result<Vec<TeamQuality>> {
    sqlx::query_as(
        "WITH teams AS (
             SELECT team_id FROM intake.round_teams WHERE round_id = $1
             UNION SELECT team_id FROM intake.inspections WHERE round_id = $1
             UNION SELECT team_id FROM intake.refusals WHERE round_id = $1
         )
         SELECT t.team_id AS team,
                (SELECT count(*) FROM intake.inspections i WHERE i.round_id = $1 AND i.team_id = t.team_id) AS checks,
                (SELECT count(*) FROM intake.problems p WHERE p.round_id = $1 AND p.team_id = t.team_id
                    AND p.duplicate_of IS NULL AND p.withdrawn_at IS NULL) AS problems,
                (SELECT count(*) FROM intake.problems p WHERE p.round_id = $1 AND p.team_id = t.team_id
                    AND p.duplicate_of IS NOT NULL) AS duplicates,
                (SELECT count(*) FROM intake.problems p WHERE p.round_id = $1 AND p.team_id = t.team_id
                    AND p.withdrawn_at IS NOT NULL) AS withdrawn,
                coalesce((SELECT refused FROM intake.refusals r WHERE r.round_id = $1 AND r.team_id = t.team_id), 0) AS refused
         FROM teams t ORDER BY t.team_id",
    )
    .bind(round)
    .fetch_all(conn)
    .await
}

/// The rounds, newest first, each with the teams in it and the cities each covers.
pub async fn rounds(conn: &mut PgConnection) -> sqlx::Result<Vec<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
                    'id', r.id, 'starts_on', r.starts_on, 'ends_on', r.ends_on, 'kind', r.kind, 'cities', r.cities,
                    'teams', coalesce((SELECT jsonb_agg(jsonb_build_object('team', t.team_id, 'cities', t.cities)
                                                        ORDER BY t.team_id)
                                       FROM intake.round_teams t WHERE t.round_id = r.id), '[]'::jsonb))
         FROM intake.rounds r ORDER BY r.starts_on DESC, r.id",
    )
    .fetch_all(conn)
    .await
}

/// The rounds `team` is assigned to, newest first, with the cities it covers in each.
pub async fn team_rounds(conn: &mut PgConnection, team: &str) -> sqlx::Result<Vec<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('id', r.id, 'starts_on', r.starts_on, 'ends_on', r.ends_on, 'kind', r.kind,
                                   'cities', t.cities)
         FROM intake.round_teams t JOIN intake.rounds r ON r.id = t.round_id
         WHERE t.team_id = $1 ORDER BY r.starts_on DESC, r.id",
    )
    .bind(team)
    .fetch_all(conn)
    .await
}

/// The site checks `team` recorded in `round`, newest first (at most 5,000), with the answer
/// each got: its problems' outcomes.
pub async fn team_inspections(
    conn: &mut PgConnection,
    team: &str,
    round: &str,
) -> sqlx::Result<Vec<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('id', id, 'city_code', city_code, 'county_code', county_code,
                                   'checked_at', checked_at, 'site', site, 'problems', result->'problems')
         FROM intake.inspections WHERE team_id = $1 AND round_id = $2
         ORDER BY checked_at DESC, id LIMIT 5000",
    )
    .bind(team)
    .bind(round)
    .fetch_all(conn)
    .await
}

/// The teams with their home provinces and members.
pub async fn teams(conn: &mut PgConnection) -> sqlx::Result<Vec<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('id', id, 'home_province', home_province, 'members', members)
         FROM intake.teams ORDER BY id",
    )
    .fetch_all(conn)
    .await
}

/// The city packages (三位一体包保).
pub async fn packages(conn: &mut PgConnection) -> sqlx::Result<Vec<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('city_code', city_code, 'ministry_department', ministry_department,
                                   'affiliated_unit', affiliated_unit, 'provincial_department', provincial_department)
         FROM intake.city_packages ORDER BY city_code",
    )
    .fetch_all(conn)
    .await
}

/// A problem as its team reported it: the site (name, credit code, address, position), the
/// category, description and evidence, and when.
pub async fn problem(conn: &mut PgConnection, id: uuid::Uuid) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
                    'id', p.id, 'round', p.round_id, 'team', p.team_id, 'city_code', p.city_code,
                    'county_code', p.county_code, 'category', p.category, 'severity', p.severity,
                    'description', p.description, 'evidence', p.evidence, 'rebound_of', p.rebound_of,
                    'duplicate_of', p.duplicate_of, 'reported_at', p.reported_at, 'checked_at', i.checked_at,
                    'site', i.site)
         FROM intake.problems p JOIN intake.inspections i ON i.id = p.inspection_id WHERE p.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A reported problem's site (as stored, WGS 84), severity and description.
pub async fn reported(
    conn: &mut PgConnection,
    problem_id: Uuid,
) -> sqlx::Result<Option<(sqlx::types::Json<shared::events::Site>, String, String)>> {
    sqlx::query_as(
        "SELECT i.site, p.severity, p.description FROM intake.problems p
         JOIN intake.inspections i ON i.id = p.inspection_id WHERE p.id = $1",
    )
    .bind(problem_id)
    .fetch_optional(conn)
    .await
}

pub async fn problem_known(conn: &mut PgConnection, problem_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM intake.problems WHERE id = $1)")
        .bind(problem_id)
        .fetch_one(conn)
        .await
}

/// Enters or updates enterprises on `city`'s emergency list (each credit code once); answers
/// the credit codes that were new.
pub async fn upsert_emergency_enterprises(
    conn: &mut PgConnection,
    city: &str,
    enterprises: &[crate::domain::EmergencyEnterprise],
) -> sqlx::Result<std::collections::HashSet<String>> {
    if enterprises.is_empty() {
        return Ok(Default::default());
    }
    // `xmax = 0` marks a row this statement inserted rather than updated.
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "INSERT INTO intake.emergency_enterprises (city_code, credit_code, name, measures)
         SELECT $1, code, name, measures FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS e(code, name, measures)
         ON CONFLICT (city_code, credit_code)
         DO UPDATE SET name = EXCLUDED.name, measures = EXCLUDED.measures, updated_at = now()
         RETURNING credit_code, xmax = 0",
    )
    .bind(city)
    .bind(enterprises.iter().map(|e| e.credit_code.clone()).collect::<Vec<_>>())
    .bind(enterprises.iter().map(|e| e.name.clone()).collect::<Vec<_>>())
    .bind(
        enterprises.iter().map(|e| serde_json::to_value(&e.measures).expect("measures serialise")).collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter(|(_, new)| *new).map(|(code, _)| code).collect())
}

/// How many enterprises `city`'s emergency list holds, and a page of them.
pub async fn emergency_list(
    conn: &mut PgConnection,
    city: &str,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(i64, Vec<(String, String, Value)>)> {
    let count = sqlx::query_scalar("SELECT count(*) FROM intake.emergency_enterprises WHERE city_code = $1")
        .bind(city)
        .fetch_one(&mut *conn)
        .await?;
    let items = sqlx::query_as(
        "SELECT credit_code, name, measures FROM intake.emergency_enterprises WHERE city_code = $1
         ORDER BY credit_code LIMIT $2 OFFSET $3",
    )
    .bind(city)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((count, items))
}

pub async fn upsert_alert(
    conn: &mut PgConnection,
    city: &str,
    id: &str,
    alert: &crate::domain::AlertRequest,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO intake.alerts (city_code, id, level, starts_at, ends_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (city_code, id) DO UPDATE SET level = $3, starts_at = $4, ends_at = $5, updated_at = now()",
    )
    .bind(city)
    .bind(id)
    .bind(&alert.level)
    .bind(alert.from)
    .bind(alert.to)
    .execute(conn)
    .await?;
    Ok(())
}

/// `city`'s alerts, latest first: id, level, from, to.
pub async fn alerts(
    conn: &mut PgConnection,
    city: &str,
) -> sqlx::Result<Vec<(String, String, time::OffsetDateTime, time::OffsetDateTime)>> {
    sqlx::query_as(
        "SELECT id, level, starts_at, ends_at FROM intake.alerts WHERE city_code = $1 ORDER BY starts_at DESC, id",
    )
    .bind(city)
    .fetch_all(conn)
    .await
}

/// For each site check (its city, credit code and moment, by position): whether the site is on
/// its city's emergency list, and the levels of the alerts that covered that moment.
pub async fn emergency_facts(
    conn: &mut PgConnection,
    checks: &[(String, String, time::OffsetDateTime)],
) -> sqlx::Result<Vec<(bool, Vec<String>)>> {
    let mut facts = vec![(false, Vec::new()); checks.len()];
    if checks.is_empty() {
        return Ok(facts);
    }
    let rows: Vec<(i64, Vec<String>)> = sqlx::query_as(
        "SELECT c.n, array_remove(array_agg(a.level), NULL)
         FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS c(city, code, at, n)
         JOIN intake.emergency_enterprises e ON e.city_code = c.city AND e.credit_code = c.code
         LEFT JOIN intake.alerts a ON a.city_code = c.city AND c.at >= a.starts_at AND c.at < a.ends_at
         GROUP BY c.n",
    )
    .bind(checks.iter().map(|c| c.0.clone()).collect::<Vec<_>>())
    .bind(checks.iter().map(|c| c.1.clone()).collect::<Vec<_>>())
    .bind(checks.iter().map(|c| c.2).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    for (n, levels) in rows {
        facts[(n - 1) as usize] = (true, levels);
    }
    Ok(facts)
}

/// Enters or updates items of one of `city`'s clean-up registers (each id once); answers the ids
/// that were new.
pub async fn upsert_register_items(
    conn: &mut PgConnection,
    city: &str,
    register: &str,
    items: &[crate::domain::RegisterItem],
) -> sqlx::Result<std::collections::HashSet<String>> {
    if items.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "INSERT INTO intake.register_items (city_code, register, item_id, name, county_code, state)
         SELECT $1, $2, id, name, county, state FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])
                AS i(id, name, county, state)
         ON CONFLICT (city_code, register, item_id)
         DO UPDATE SET name = EXCLUDED.name, county_code = EXCLUDED.county_code, state = EXCLUDED.state, updated_at = now()
         RETURNING item_id, xmax = 0",
    )
    .bind(city)
    .bind(register)
    .bind(items.iter().map(|i| i.id.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.name.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.county_code.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.state.clone()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter(|(_, new)| *new).map(|(id, _)| id).collect())
}

/// How many items one of `city`'s registers holds in each state.
pub async fn register_counts(conn: &mut PgConnection, city: &str, register: &str) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT state, count(*) FROM intake.register_items WHERE city_code = $1 AND register = $2
         GROUP BY state ORDER BY state",
    )
    .bind(city)
    .bind(register)
    .fetch_all(conn)
    .await
}
