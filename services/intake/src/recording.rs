//! Recording site checks, one or a thousand at a time. A batch costs a fixed number of
//! statements whatever its size: everything is read with one query per kind of fact, checked in
//! memory, and written with one multi-row insert per table. Each item is judged on its own: a
//! bad one is refused with its fields named and never sinks the others.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use shared::error::ApiError;
use shared::events::{CheckRecorded, InspectionsRecorded, Previous, ProblemReported, RecheckFailed};
use shared::outbox::{Outbox, Outgoing};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{self, EarlierEntry, InspectionRequest, Outcome};
use crate::store::{self, InspectionRow, ProblemRow};

/// What became of one item.
pub enum Recorded {
    /// Stored now; the answer kept for resends.
    Created(Value),
    /// Stored before (a resend): the first answer.
    AlreadyHad(Value),
    Refused(ApiError),
}

impl Recorded {
    pub fn status(&self) -> &'static str {
        match self {
            Recorded::Created(_) => "created",
            Recorded::AlreadyHad(_) => "already_had",
            Recorded::Refused(_) => "refused",
        }
    }
}

fn with_status(mut answer: Value, status: &str) -> Value {
    answer["status"] = status.into();
    answer
}

/// Records `items` (each parsed, or the reason it could not be) for an inspector of `team`,
/// within the caller's transaction. The answers come back in item order.
pub async fn record(
    conn: &mut PgConnection,
    outbox: &Outbox,
    team: &str,
    items: Vec<Result<InspectionRequest, ApiError>>,
) -> Result<Vec<Recorded>, ApiError> {
    let mut answers: Vec<Option<Recorded>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let mut pending: Vec<(usize, InspectionRequest)> = Vec::with_capacity(items.len());
    // What needs no stored state: shape, the caller's team, the fields' rules, repeats.
    let mut first_of: HashMap<Uuid, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Err(e) => answers[i] = Some(Recorded::Refused(e)),
            Ok(inspection) => {
                if let Some(&first) = first_of.get(&inspection.id) {
                    repeats.push((i, first));
                    continue;
                }
                first_of.insert(inspection.id, i);
                pending.push((i, inspection));
            }
        }
    }

    // Resends answer what was stored.
    let ids: Vec<Uuid> = pending.iter().map(|(_, p)| p.id).collect();
    let stored: HashMap<Uuid, Value> = store::inspection_results(conn, &ids).await?.into_iter().collect();
    pending.retain(|(i, inspection)| match stored.get(&inspection.id) {
        Some(answer) => {
            answers[*i] = Some(Recorded::AlreadyHad(with_status(answer.clone(), "already_had")));
            false
        }
        None => true,
    });
    pending.retain(|(i, inspection)| {
        let refusal = if inspection.team != team {
            Some(ApiError::forbidden("team", format!("your token is for team {team}")))
        } else {
            domain::validate_inspection(inspection).finish().err()
        };
        match refusal {
            Some(e) => {
                answers[*i] = Some(Recorded::Refused(e));
                false
            }
            None => true,
        }
    });

    // The rounds and the cities the team covers in each.
    let rounds: Vec<String> =
        pending.iter().map(|(_, p)| p.round.clone()).collect::<HashSet<_>>().into_iter().collect();
    let known: HashSet<String> = store::known_rounds(conn, &rounds).await?.into_iter().collect();
    let covered: HashMap<String, Vec<String>> = store::coverage(conn, team, &rounds).await?.into_iter().collect();
    pending.retain(|(i, p)| {
        let refusal = match covered.get(&p.round) {
            Some(cities) if cities.contains(&p.city_code) => None,
            Some(_) => Some(ApiError::forbidden(
                "city_code",
                format!("team {team} does not cover {} in round {}", p.city_code, p.round),
            )),
            None if !known.contains(&p.round) => Some(ApiError::invalid("round", format!("no round {}", p.round))),
            None => Some(ApiError::forbidden("team", format!("team {team} has no cities in round {}", p.round))),
        };
        match refusal {
            Some(e) => {
                answers[*i] = Some(Recorded::Refused(e));
                false
            }
            None => true,
        }
    });

    // Problem ids are the client's: one already taken, here or earlier, is a conflict.
    let problem_ids: Vec<Uuid> = pending.iter().flat_map(|(_, p)| p.problems.iter().map(|q| q.id)).collect();
    let owners: HashMap<Uuid, Uuid> = store::problem_owners(conn, &problem_ids).await?.into_iter().collect();
    let mut taken: HashSet<Uuid> = HashSet::new();
    pending.retain(|(i, p)| {
        let clash = p.problems.iter().enumerate().find_map(|(j, q)| {
            owners
                .get(&q.id)
                .map(|other| format!("already reported with inspection {other}"))
                .or_else(|| taken.contains(&q.id).then(|| "reported by another item of this batch".to_string()))
                .map(|why| (j, why))
        });
        match clash {
            Some((j, why)) => {
                answers[*i] = Some(Recorded::Refused(ApiError::conflict(format!("problems[{j}].id"), why)));
                false
            }
            None => {
                taken.extend(p.problems.iter().map(|q| q.id));
                true
            }
        }
    });

    // Emergency-plan checks: a site on its city's emergency list, checked during an alert. A
    // problem reported there without a category is an emergency-plan problem; elsewhere it
    // needs one.
    let moments: Vec<(String, String, time::OffsetDateTime)> = pending
        .iter()
        .map(|(_, p)| (p.city_code.clone(), p.site.credit_code.clone().unwrap_or_default(), p.checked_at))
        .collect();
    let facts = store::emergency_facts(conn, &moments).await?;
    let mut alerts: HashMap<Uuid, String> = HashMap::new();
    let mut judged = Vec::with_capacity(pending.len());
    for ((i, mut p), (listed, levels)) in pending.into_iter().zip(facts) {
        let levels: Vec<&str> = levels.iter().map(String::as_str).collect();
        let alert = domain::emergency_alert(listed, &levels);
        let mut missing = None;
        for (j, q) in p.problems.iter_mut().enumerate() {
            match domain::category_at(&q.category, alert) {
                Some(category) => q.category = category,
                None => missing = missing.or(Some(j)),
            }
        }
        if let Some(j) = missing {
            answers[i] = Some(Recorded::Refused(ApiError::invalid(
                format!("problems[{j}].category"),
                "required (it may be left out only at an emergency-plan check: a listed enterprise during an alert)",
            )));
            continue;
        }
        if let Some(level) = alert {
            alerts.insert(p.id, level.to_string());
        }
        judged.push((i, p));
    }
    let pending = judged;

    // Duplicates and rebounds: the latest entry of each site and category, locked so that a
    // concurrent batch cannot make a second entry of the same one.
    let sites: Vec<(shared::events::Site, String)> = pending
        .iter()
        .map(|(_, p)| {
            let site = p.site.to_wgs84();
            let key = domain::site_key(&site);
            (site, key)
        })
        .collect();
    let mut keys: Vec<(String, String)> = pending
        .iter()
        .zip(&sites)
        .flat_map(|((_, p), (_, key))| p.problems.iter().map(move |q| (key.clone(), q.category.clone())))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    keys.sort();
    store::lock_site_categories(conn, &keys).await?;
    let mut entries: HashMap<(String, String), EarlierEntry> =
        store::latest_entries(conn, &keys).await?.into_iter().collect();

    let mut inspections = Vec::with_capacity(pending.len());
    let mut problems = Vec::new();
    let mut events = Vec::new();
    // The checks accepted, per city: one event each (a batch is mostly one team in one city).
    let mut checks: Vec<(String, Vec<CheckRecorded>)> = Vec::new();
    for ((i, p), (site, key)) in pending.into_iter().zip(sites) {
        let mut results = Vec::with_capacity(p.problems.len());
        let mut duplicates = 0u32;
        for q in &p.problems {
            let slot = (key.clone(), q.category.clone());
            let outcome = domain::classify(entries.get(&slot).copied());
            let (duplicate_of, rebound_of) = match outcome {
                Outcome::Reported => (None, None),
                Outcome::Duplicate { duplicate_of } => (Some(duplicate_of), None),
                Outcome::Rebound { rebound_of } => (None, Some(rebound_of)),
            };
            if duplicate_of.is_none() {
                // Later reports of this site and category in the batch repeat this entry.
                entries.insert(slot, EarlierEntry { problem_id: q.id, closed: false });
                events.push(Outgoing::new(
                    Some(&p.city_code),
                    q.id.to_string(),
                    &ProblemReported {
                        problem_id: q.id,
                        problem_seq: 1,
                        previous: Previous::default(),
                        inspection_id: p.id,
                        round: p.round.clone(),
                        team: p.team.clone(),
                        city_code: p.city_code.clone(),
                        county_code: p.county_code.clone(),
                        category: q.category.clone(),
                        severity: q.severity.clone(),
                        description: q.description.clone(),
                        site: site.clone(),
                        checked_at: p.checked_at,
                        rebound_of,
                        evidence: q.evidence.clone(),
                    },
                ));
            } else {
                duplicates += 1;
            }
            let mut result = serde_json::to_value(outcome).expect("an outcome serialises");
            result["id"] = json!(q.id);
            results.push(result);
            problems.push(ProblemRow {
                id: q.id,
                inspection_id: p.id,
                round_id: p.round.clone(),
                team_id: p.team.clone(),
                city_code: p.city_code.clone(),
                county_code: p.county_code.clone(),
                site_key: key.clone(),
                category: q.category.clone(),
                severity: q.severity.clone(),
                description: q.description.clone(),
                evidence: serde_json::to_value(&q.evidence).expect("evidence serialises"),
                duplicate_of,
                rebound_of,
            });
        }
        let city = match checks.iter_mut().find(|(city, _)| *city == p.city_code) {
            Some(city) => city,
            None => {
                checks.push((p.city_code.clone(), Vec::new()));
                checks.last_mut().expect("just pushed")
            }
        };
        city.1.push(CheckRecorded {
            inspection_id: p.id,
            round: p.round.clone(),
            team: p.team.clone(),
            county_code: p.county_code.clone(),
            checked_at: p.checked_at,
            problems_reported: p.problems.len() as u32 - duplicates,
            duplicates,
            emergency_alert: alerts.get(&p.id).cloned(),
        });
        let mut answer = json!({ "id": p.id, "status": "created", "problems": results });
        if let Some(level) = alerts.get(&p.id) {
            answer["emergency_alert"] = json!(level);
        }
        inspections.push(InspectionRow {
            id: p.id,
            round_id: p.round,
            team_id: p.team,
            city_code: p.city_code,
            county_code: p.county_code,
            checked_at: p.checked_at,
            site_key: key,
            site: p.site.stored(&site),
            result: answer.clone(),
        });
        answers[i] = Some(Recorded::Created(answer));
    }
    store::insert_inspections(conn, &inspections).await?;
    store::insert_problems(conn, &problems).await?;
    for (city_code, checks) in checks {
        // The subject names the batch by its first check.
        let subject = checks[0].inspection_id.to_string();
        events.push(Outgoing::new(
            Some(&city_code),
            subject,
            &InspectionsRecorded { city_code: city_code.clone(), checks },
        ));
    }
    outbox.publish_many(conn, events).await?;

    // An id sent twice in one batch: the second gets what the first got.
    for (i, first) in repeats {
        answers[i] = Some(match &answers[first] {
            Some(Recorded::Created(answer) | Recorded::AlreadyHad(answer)) => {
                Recorded::AlreadyHad(with_status(answer.clone(), "already_had"))
            }
            _ => Recorded::Refused(ApiError::conflict(
                "id",
                "the same inspection id twice in one batch, and the first was refused",
            )),
        });
    }
    Ok(answers.into_iter().map(|a| a.expect("every item is answered")).collect())
}

/// Enters a rebound found on a re-check (回潮) as a new ledger entry: a site check by the
/// re-checking team at the closed problem's site, with one problem linked to the closed one
/// (`rebound_of`), reported like any other. Entered once, under the id verification chose.
pub async fn record_rebound(conn: &mut PgConnection, outbox: &Outbox, failed: &RecheckFailed) -> anyhow::Result<()> {
    if store::problem_known(conn, failed.rebound_id).await? {
        return Ok(());
    }
    let reported = store::reported(conn, failed.problem_id).await?;
    let site = domain::rebound_site(
        reported.as_ref().map(|(site, _, _)| site.0.clone()),
        failed.site_name.as_deref(),
        &failed.city_code,
    );
    let severity = reported.as_ref().map_or("general", |(_, severity, _)| severity.as_str()).to_string();
    let description = domain::rebound_description(&failed.result, reported.as_ref().map(|(_, _, d)| d.as_str()));
    let key = domain::site_key(&site);
    // As a report of the same site and category would: one entry at a time.
    store::lock_site_categories(conn, &[(key.clone(), failed.category.clone())]).await?;
    let answer = json!({ "id": failed.recheck_id, "status": "created", "recheck": true,
                         "problems": [ { "id": failed.rebound_id, "outcome": "rebound", "rebound_of": failed.problem_id } ] });
    store::insert_inspections(
        conn,
        &[InspectionRow {
            id: failed.recheck_id,
            round_id: failed.round.clone(),
            team_id: failed.team.clone(),
            city_code: failed.city_code.clone(),
            county_code: failed.county_code.clone(),
            checked_at: failed.verified_at,
            site_key: key.clone(),
            site: serde_json::to_value(&site)?,
            result: answer,
        }],
    )
    .await?;
    store::insert_problems(
        conn,
        &[ProblemRow {
            id: failed.rebound_id,
            inspection_id: failed.recheck_id,
            round_id: failed.round.clone(),
            team_id: failed.team.clone(),
            city_code: failed.city_code.clone(),
            county_code: failed.county_code.clone(),
            site_key: key,
            category: failed.category.clone(),
            severity: severity.clone(),
            description: description.clone(),
            evidence: json!([]),
            duplicate_of: None,
            rebound_of: Some(failed.problem_id),
        }],
    )
    .await?;
    let event = ProblemReported {
        problem_id: failed.rebound_id,
        problem_seq: 1,
        previous: Previous::default(),
        inspection_id: failed.recheck_id,
        round: failed.round.clone(),
        team: failed.team.clone(),
        city_code: failed.city_code.clone(),
        county_code: failed.county_code.clone(),
        category: failed.category.clone(),
        severity,
        description,
        site,
        checked_at: failed.verified_at,
        rebound_of: Some(failed.problem_id),
        evidence: Vec::new(),
    };
    outbox.publish(conn, Some(&failed.city_code), failed.rebound_id.to_string(), &event).await?;
    Ok(())
}
