//! `skyledger simulate`: a seeded, synthetic campaign year replayed against the HTTP APIs.
//!
//! The year is shaped like the Blue Sky campaign (DESIGN.md): 22 rounds of 15 days over the 39
//! cities, teams of three sent to cities of other provinces, 666,000 site checks and 52,000
//! problems in the campaign's category mix (times `--scale`). Each problem has a fate drawn from
//! the seed: fixed on time, a faked or failed fix that is reopened and then fixed, fixed late
//! (overdue first), or never fixed in the year. Every round is set up, synced in batches of
//! 1,000 checks, its handover sheets acknowledged by the cities, and its problems rectified
//! (in batches per city) and verified (in batches per verifier team). On a simulated clock the
//! run moves the clock through the year: past the gathering window once a round's problems are
//! in the ledger, so sheets go out at once, and on past deadlines, so overdue flags rise. On the
//! real clock the run waits out the gathering window, the rounds are dated in the past year and
//! nothing falls overdue. Ids come from the seed, so the same seed twice sends the same
//! reports (the services answer "already had"); the rounds and teams are named after the seed
//! so a run never mixes with other data on the stack.
//!
//! Each city's clean-up registers (the "两散": scattered polluting enterprises, coal boilers;
//! and the coal-to-gas villages) are entered before the first round and cleaned up round by
//! round: most items are dealt with in a round drawn from the seed, every third city clears its
//! "两散" completely, and the villages never supplied are marked lagging at the year's end.
//!
//! At the year's end the campaign office acts: a summons held in every thirteenth city, ending
//! in two written commitments, one found kept and one not; and a special inspection of the first
//! of those cities, linking three of its problems, concluded.
//!
//! At the end the run waits until the public statistics of its rounds (and the registers'
//! figures and the public summonses and special inspections, less what they held before the
//! run) agree with what it sent, and prints both.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use shared::auth::{Role, TokenSigner};
use shared::reference::{self, City};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

const ROUNDS: usize = 22;
const ROUND_DAYS: i64 = 15;
const YEAR_CHECKS: f64 = 666_000.0;
const YEAR_PROBLEMS: f64 = 52_000.0;
/// Person-times 19,500 over 22 rounds is about 300 teams of three a round: 8 per city.
const TEAMS_PER_CITY: f64 = 8.0;
const BATCH: usize = 1_000;
/// Past every deadline the policy gives (small thermal power: 180 days).
const YEAR_END_GRACE_DAYS: i64 = 200;

/// The campaign's mix: the four categories the press conference named, with its figures; the
/// remaining 40,248 problems spread over the other task types.
const CATEGORY_MIX: [(&str, u32); 14] = [
    ("emergency_plan", 6_394),
    ("scattered_polluting", 1_523),
    ("coal_boiler", 2_391),
    ("coal_to_gas", 1_444),
    ("dust", 9_000),
    ("vocs", 8_000),
    ("industrial_kiln", 5_000),
    ("exceedance", 4_000),
    ("diesel_vehicle", 3_500),
    ("online_monitoring", 3_000),
    ("other", 3_000),
    ("open_burning", 2_500),
    ("special_emission_limit", 2_000),
    ("small_thermal_power", 248),
];

/// Register items per city at scale 1 (the "两散" registers were worked down city by city; 24,500
/// coal-to-gas villages were visited, 1,444 lagging) and the share of items dealt with in the
/// year.
const REGISTER_SIZES: [(&str, f64, f64); 3] =
    [("scattered_enterprises", 3_000.0, 0.85), ("coal_boilers", 500.0, 0.9), ("coal_to_gas_villages", 628.0, 0.94)];

/// The state an item of `register` ends in once dealt with (the `i`th item: varied).
fn done_state(register: &str, i: usize) -> &'static str {
    match register {
        "scattered_enterprises" => ["shut_down", "relocated", "upgraded"][i % 3],
        "coal_boilers" => ["removed", "converted"][i % 2],
        _ => "supplied",
    }
}

/// Provinces teams come from: every province takes part, the campaign's own ones included
/// (they inspect the others).
const HOME_PROVINCES: [&str; 12] = [
    "110000", "120000", "130000", "140000", "370000", "410000", "610000", "320000", "330000", "420000", "210000",
    "510000",
];

/// Where the services are.
pub struct Services {
    pub intake: String,
    pub assignment: String,
    pub verification: String,
    pub publication: String,
}

pub struct Options {
    pub scale: f64,
    pub seed: u64,
    /// Campaign days per real second at most; 0 runs as fast as the stack takes it.
    pub speed: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How long to wait for the public statistics to agree at the end.
    pub settle: Duration,
    pub services: Services,
    /// How assignment gathers a city's problems before it issues their sheet: on the simulated
    /// clock the run moves the clock past this after each round's checks.
    pub gathering: Gathering,
}

/// Assignment's gathering policy, as configured for the deployment.
#[derive(Debug, Clone, Copy)]
pub struct Gathering {
    pub window: Duration,
    /// The daily cut-off (Asia/Shanghai) that replaces the window when set.
    pub daily_cutoff: Option<time::Time>,
}

impl Gathering {
    /// A moment by which every problem received at or before `now` is due on a sheet.
    fn past(&self, now: OffsetDateTime) -> OffsetDateTime {
        // The clock moves in whole seconds.
        let margin = time::Duration::seconds(2);
        match self.daily_cutoff {
            None => now + time::Duration::try_from(self.window).unwrap_or(time::Duration::ZERO) + margin,
            Some(cutoff) => {
                let local = now.to_offset(shared::clock::SHANGHAI);
                let today = local.replace_time(cutoff);
                let first = if local <= today { today } else { today + time::Duration::days(1) };
                first + margin
            }
        }
    }
}

/// What the run sent, and the figures that must follow from it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub rounds: i64,
    pub site_checks: i64,
    pub problems_found: i64,
    pub handed_over: i64,
    pub closed: i64,
    pub reopened: i64,
    pub overdue: i64,
    /// The clean-up registers, all three together: items, those still outstanding at the
    /// year's end, and the lagging villages.
    pub emergency_plan_checks: i64,
    pub register_items: i64,
    pub register_outstanding: i64,
    pub lagging_villages: i64,
    /// The office's acts: summonses held, their commitments found not kept, special inspections
    /// concluded and the problems linked to them.
    pub summonses_held: i64,
    pub commitments_unkept: i64,
    pub special_inspections: i64,
    pub special_inspection_findings: i64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub scale: f64,
    pub simulated_clock: bool,
    /// Teams sent, counted once per round (the public summary's `teams_deployed`).
    pub teams_deployed: i64,
    pub sent: Totals,
    /// The public statistics of the run's rounds, summed.
    pub published: Totals,
    pub agree: bool,
    pub elapsed_secs: f64,
    /// Phases of the run and their seconds.
    pub phases: BTreeMap<String, f64>,
    pub handover_sheets: usize,
}

/// A small seeded generator (SplitMix64): the same seed gives the same year everywhere.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// What becomes of a problem once it is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    FixedOnTime,
    /// The first verdict finds the fix not done (or faked); reopened, then fixed.
    FixFailed(&'static str),
    /// Fixed only at the end of the year, past its deadline.
    FixedLate,
    /// Still open when the year ends.
    Unresolved,
}

impl Fate {
    fn draw(rng: &mut Seeded) -> Self {
        let x = rng.unit();
        if x < 0.025 {
            Fate::FixFailed("fake_rectification")
        } else if x < 0.04 {
            Fate::FixFailed("not_rectified")
        } else if x < 0.07 {
            Fate::FixedLate
        } else if x < 0.08 {
            Fate::Unresolved
        } else {
            Fate::FixedOnTime
        }
    }
}

#[derive(Debug, Clone)]
struct Problem {
    id: Uuid,
    city: String,
    category: &'static str,
    /// The team that found it (never its verifier).
    team: usize,
    fate: Fate,
}

struct Team {
    id: String,
    home_province: &'static str,
}

/// One city's clean-up register: each item's id and the round it is dealt with in (none: not
/// in the year).
struct RegisterPlan {
    city: String,
    register: &'static str,
    items: Vec<(String, Option<usize>)>,
}

/// The whole year, drawn from the seed before anything is sent.
struct Campaign {
    prefix: String,
    teams: Vec<Team>,
    /// Per round: the city each team covers.
    coverage: Vec<Vec<&'static City>>,
    /// Per round: the site checks, as inspections.
    checks: Vec<Vec<Value>>,
    /// Per round: the problems in those checks.
    problems: Vec<Vec<Problem>>,
    registers: Vec<RegisterPlan>,
    /// Per city: the enterprises on its emergency list (credit codes), each checked once during
    /// an emergency-response round, under the alert the city declares for it.
    emergency_lists: BTreeMap<String, Vec<String>>,
}

fn split(total: usize, parts: usize, i: usize) -> usize {
    total / parts + usize::from(i < total % parts)
}

impl Campaign {
    fn draw(scale: f64, seed: u64, day_zero: Date) -> Self {
        let mut rng = Seeded(seed);
        let cities = reference::cities();
        let prefix = format!("SIM{seed}");
        let team_count = ((TEAMS_PER_CITY * scale).round() as usize).max(1) * cities.len();
        let teams: Vec<Team> = (0..team_count)
            .map(|t| Team { id: format!("{prefix}-T{t:03}"), home_province: HOME_PROVINCES[t % HOME_PROVINCES.len()] })
            .collect();
        // Team t covers one city a round, moving on each round, never in its own province.
        let coverage: Vec<Vec<&City>> = (0..ROUNDS)
            .map(|r| {
                teams
                    .iter()
                    .enumerate()
                    .map(|(t, team)| {
                        (0..cities.len())
                            .map(|k| &cities[(t + r * 7 + k) % cities.len()])
                            .find(|c| c.province_code != team.home_province)
                            .expect("a city outside the team's province")
                    })
                    .collect()
            })
            .collect();
        let year_checks = (YEAR_CHECKS * scale).round() as usize;
        let year_problems = ((YEAR_PROBLEMS * scale).round() as usize).min(year_checks);
        let mix_total: u32 = CATEGORY_MIX.iter().map(|(_, n)| n).sum();
        let mut checks = Vec::with_capacity(ROUNDS);
        let mut problems = Vec::with_capacity(ROUNDS);
        let mut emergency_lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (r, covered) in coverage.iter().enumerate() {
            let round_checks = split(year_checks, ROUNDS, r);
            let round_problems = split(year_problems, ROUNDS, r);
            // Which of the round's checks find a problem: an even spread with a seeded start.
            let stride = round_checks as f64 / round_problems.max(1) as f64;
            let offset = rng.unit() * stride;
            let finds: std::collections::HashSet<usize> =
                (0..round_problems).map(|p| (offset + p as f64 * stride) as usize).collect();
            let day = day_zero + time::Duration::days(r as i64 * ROUND_DAYS);
            let mut round_inspections = Vec::with_capacity(round_checks);
            let mut round_found = Vec::with_capacity(round_problems);
            for i in 0..round_checks {
                let t = i % teams.len();
                let city = covered[t];
                let mut found = Vec::new();
                if finds.contains(&i) {
                    let mut pick = rng.below(mix_total as usize) as u32;
                    let category = CATEGORY_MIX
                        .iter()
                        .find(|(_, n)| {
                            let hit = pick < *n;
                            pick = pick.saturating_sub(*n);
                            hit
                        })
                        .map_or("other", |(c, _)| c);
                    let problem = Problem {
                        id: rng.uuid(),
                        city: city.code.clone(),
                        category,
                        team: t,
                        fate: Fate::draw(&mut rng),
                    };
                    found.push(json!({
                        "id": problem.id, "category": category,
                        "severity": if rng.below(5) == 0 { "serious" } else { "general" },
                        "description": format!("模拟第{}轮现场检查发现的问题", r + 1),
                    }));
                    round_found.push(problem);
                }
                let checked_at = OffsetDateTime::new_in_offset(
                    day,
                    time::Time::from_hms(8 + (i % 10) as u8, (i % 60) as u8, 0).expect("a time of day"),
                    shared::clock::SHANGHAI,
                );
                let mut site = json!({ "name": format!("模拟点位 {}-{:02}-{i:06}", prefix, r + 1),
                                       "lat": city.lat + (rng.unit() - 0.5) * 0.3, "lon": city.lon + (rng.unit() - 0.5) * 0.3 });
                // In an emergency-response round, every fifth check is of a listed enterprise.
                if round_kind(r) == "emergency_response" && i % 5 == 0 {
                    let code = intake::domain::with_check_character(&format!(
                        "91{}{:09}",
                        city.code,
                        (seed % 1000) * 1_000_000 + i as u64
                    ))
                    .expect("digits make a credit code");
                    site["credit_code"] = json!(code);
                    emergency_lists.entry(city.code.clone()).or_default().push(code);
                }
                round_inspections.push(json!({
                    "id": rng.uuid(), "round": format!("{prefix}-R{:02}", r + 1), "team": teams[t].id,
                    "city_code": city.code,
                    "checked_at": shared::csv::timestamp(checked_at),
                    "site": site,
                    "problems": found,
                }));
            }
            checks.push(round_inspections);
            problems.push(round_found);
        }
        let mut registers = Vec::new();
        for (c, city) in cities.iter().enumerate() {
            for (register, size, done_share) in REGISTER_SIZES {
                // Every third city clears its "两散" in the year.
                let clears = c % 3 == 0 && register != "coal_to_gas_villages";
                let items = (0..((size * scale).round() as usize).max(1))
                    .map(|i| {
                        let done = clears || rng.unit() < done_share;
                        (format!("{prefix}-{}-{}-{i:05}", city.code, &register[..4]), done.then(|| rng.below(ROUNDS)))
                    })
                    .collect();
                registers.push(RegisterPlan { city: city.code.clone(), register, items });
            }
        }
        Self { prefix, teams, coverage, checks, problems, registers, emergency_lists }
    }

    fn round_id(&self, r: usize) -> String {
        format!("{}-R{:02}", self.prefix, r + 1)
    }

    fn expected(&self, simulated_clock: bool) -> Totals {
        let all = || self.problems.iter().flatten();
        let count = |f: &dyn Fn(&Problem) -> bool| all().filter(|p| f(p)).count() as i64;
        let problems = all().count() as i64;
        Totals {
            rounds: ROUNDS as i64,
            site_checks: self.checks.iter().map(Vec::len).sum::<usize>() as i64,
            problems_found: problems,
            handed_over: problems,
            closed: count(&|p| p.fate != Fate::Unresolved),
            reopened: count(&|p| matches!(p.fate, Fate::FixFailed(_))),
            overdue: if simulated_clock { count(&|p| matches!(p.fate, Fate::FixedLate | Fate::Unresolved)) } else { 0 },
            emergency_plan_checks: self.emergency_lists.values().map(|l| l.len() as i64).sum(),
            register_items: self.registers.iter().map(|r| r.items.len() as i64).sum(),
            register_outstanding: self.registers.iter().flat_map(|r| &r.items).filter(|i| i.1.is_none()).count() as i64,
            lagging_villages: self
                .registers
                .iter()
                .filter(|r| r.register == "coal_to_gas_villages")
                .flat_map(|r| &r.items)
                .filter(|i| i.1.is_none())
                .count() as i64,
            summonses_held: self.summoned().count() as i64,
            commitments_unkept: self.summoned().count() as i64,
            special_inspections: 1,
            special_inspection_findings: self.case_findings().len() as i64,
        }
    }

    /// The cities summoned at the year's end: every thirteenth.
    fn summoned(&self) -> impl Iterator<Item = &'static City> {
        reference::cities().iter().step_by(13)
    }

    /// The problems the special inspection of the first city summoned links: three of its own.
    fn case_findings(&self) -> Vec<Uuid> {
        let city = &reference::cities()[0].code;
        self.problems.iter().flatten().filter(|p| &p.city == city).take(3).map(|p| p.id).collect()
    }

    /// A team that may verify in `city` (from another province).
    fn outside_team(&self, city: &City) -> &Team {
        self.teams.iter().find(|t| t.home_province != city.province_code).expect("a team from another province")
    }
}

/// The HTTP side: tokens for every role and retries where the services ask for them.
struct Client {
    http: reqwest::Client,
    signer: TokenSigner,
    services: Services,
    admin: String,
}

impl Client {
    fn token(&self, role: Role, team: Option<&str>, jurisdiction: Option<&str>) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.signer.issue(role, team.map(Into::into), jurisdiction.map(Into::into), now, 12 * 3600).expect("a token")
    }

    /// Sends a request; 429/503 (overload) and connection errors are retried, honouring
    /// `Retry-After`. `until` lists further statuses that mean "not yet" (the event has not
    /// reached that service): those are retried too, for up to two minutes.
    async fn send(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: Option<&Value>,
        not_yet: &[u16],
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(50);
        loop {
            let mut request = self.http.request(method.clone(), url).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let retry_after = match request.send().await {
                Ok(r) if r.status().is_success() => return Ok(r.json().await.unwrap_or(Value::Null)),
                Ok(r) if [StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE].contains(&r.status()) => r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map(Duration::from_secs),
                Ok(r) if not_yet.contains(&r.status().as_u16()) => None,
                Ok(r) => bail!("{method} {url}: {} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) if e.is_connect() || e.is_timeout() => None,
                Err(e) => return Err(e).context(format!("{method} {url}")),
            };
            ensure!(started.elapsed() < Duration::from_secs(120), "{method} {url}: still refused after two minutes");
            tokio::time::sleep(retry_after.unwrap_or(wait)).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    async fn put(&self, url: String, body: Value) -> anyhow::Result<()> {
        self.send(Method::PUT, &url, &self.admin, Some(&body), &[]).await.map(drop)
    }

    async fn clock(&self, service: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, &format!("{service}/v1/admin/clock"), &self.admin, None, &[]).await
    }

    /// The deployment's clock now (the simulated one, when it runs on one).
    async fn now(&self) -> anyhow::Result<OffsetDateTime> {
        let clock = self.clock(&self.services.intake).await?;
        Ok(OffsetDateTime::now_utc() + time::Duration::seconds(clock["offset_secs"].as_i64().unwrap_or(0)))
    }

    /// Assignment's count of the ledger entries matching `query` (the ledger's filters).
    async fn ledger_count(&self, query: &str) -> anyhow::Result<Value> {
        let url = format!("{}/v1/ledger/count?{query}", self.services.assignment);
        self.send(Method::GET, &url, &self.admin, None, &[]).await
    }

    /// Posts a batch of rectifications or verdicts; items refused only on `retry_fields` (the
    /// problem has not reached verification yet) are sent again, for up to two minutes. Any
    /// other refusal fails the run.
    async fn field_batch(
        &self,
        path: &str,
        token: &str,
        items: Vec<Value>,
        retry_fields: &[&str],
    ) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.services.verification);
        let started = Instant::now();
        let mut wait = Duration::from_millis(50);
        let mut items = items;
        loop {
            let answer = self.send(Method::POST, &url, token, Some(&json!({ "items": items })), &[]).await?;
            let results = answer["results"].as_array().cloned().unwrap_or_default();
            ensure!(results.len() == items.len(), "POST {url}: {} results for {} items", results.len(), items.len());
            let mut again = Vec::new();
            for (item, result) in items.into_iter().zip(results) {
                if result["status"] != "refused" {
                    continue;
                }
                let errors = result["errors"].as_array().cloned().unwrap_or_default();
                let not_yet =
                    !errors.is_empty() && errors.iter().all(|e| retry_fields.iter().any(|f| e["field"] == *f));
                ensure!(not_yet, "POST {url}: verification refused {item}: {result}");
                again.push(item);
            }
            if again.is_empty() {
                return Ok(());
            }
            ensure!(
                started.elapsed() < Duration::from_secs(120),
                "POST {url}: {} items still refused after two minutes",
                again.len()
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            items = again;
        }
    }

    /// Moves the simulated clock to `target` (never back) and waits until the services that
    /// act on it have followed.
    async fn move_clock_to(&self, target: OffsetDateTime) -> anyhow::Result<()> {
        let services = [&self.services.assignment, &self.services.verification, &self.services.publication];
        self.move_clock_for(target, &services).await
    }

    /// Moves the simulated clock to `target` (never back) and waits until `followers` have
    /// followed (the others follow within moments).
    async fn move_clock_for(&self, target: OffsetDateTime, followers: &[&String]) -> anyhow::Result<()> {
        let now = self.now().await?;
        let advance = (target - now).whole_seconds();
        if advance <= 0 {
            return Ok(());
        }
        let moved = self
            .send(
                Method::POST,
                &format!("{}/v1/admin/clock", self.services.intake),
                &self.admin,
                Some(&json!({ "advance_secs": advance })),
                &[],
            )
            .await?;
        let offset = moved["offset_secs"].as_i64().unwrap_or(0);
        for service in followers {
            let started = Instant::now();
            while self.clock(service).await?["offset_secs"].as_i64().unwrap_or(0) < offset {
                ensure!(started.elapsed() < Duration::from_secs(60), "{service} did not follow the clock");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} {bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
            .expect("a progress template"),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// Writes the year's site checks (the inspections as the batch API takes them) as JSON lines,
/// without sending anything: the same documents a benchmark's floor inserts raw.
pub fn write_checks(scale: f64, seed: u64, day_zero: Date, out: &mut impl std::io::Write) -> anyhow::Result<usize> {
    let campaign = Campaign::draw(scale, seed, day_zero);
    let mut n = 0;
    for check in campaign.checks.iter().flatten() {
        serde_json::to_writer(&mut *out, check)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

/// Runs the year and reports what it sent and what was published.
pub async fn run(options: Options, signer: TokenSigner) -> anyhow::Result<Report> {
    let started = Instant::now();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let admin = signer.issue(Role::Admin, None, None, now, 12 * 3600)?;
    let client = Client { http, signer, services: options.services, admin };
    let clock = client.clock(&client.services.intake).await?;
    let simulated = clock["simulated"].as_bool().unwrap_or(false);
    let today: Date = clock["today"]
        .as_str()
        .and_then(|d| Date::parse(d, &time::format_description::well_known::Iso8601::DATE).ok())
        .context("the clock's date")?;
    // On the real clock the year lies behind us, so no check is dated in the future.
    let day_zero = if simulated { today } else { today - time::Duration::days(ROUNDS as i64 * ROUND_DAYS + 1) };

    let campaign = Campaign::draw(options.scale, options.seed, day_zero);
    let expected = campaign.expected(simulated);
    let mut phases: BTreeMap<String, f64> = BTreeMap::new();
    let mut phase =
        |name: &str, since: Instant| *phases.entry(name.into()).or_default() += since.elapsed().as_secs_f64();

    let since = Instant::now();
    set_up_teams(&client, &campaign).await?;
    let registers_before = register_figures(&client).await?;
    let acts_before = public_acts(&client).await?;
    send_registers(&client, &campaign, |_| true, |register, _| first_state(register)).await?;
    send_emergency_lists(&client, &campaign).await?;
    phase("set-up", since);

    let checks_bar = bar(expected.site_checks as usize, "site checks");
    let problems_bar = bar(expected.problems_found as usize * 2, "fixes+verdicts");
    let mut sheets = 0;
    let mut late: Vec<Problem> = Vec::new();
    for r in 0..ROUNDS {
        let round_start = OffsetDateTime::new_in_offset(
            day_zero + time::Duration::days(r as i64 * ROUND_DAYS),
            time::Time::from_hms(18, 0, 0).expect("evening"),
            shared::clock::SHANGHAI,
        );
        if simulated {
            let since = Instant::now();
            client.move_clock_to(round_start).await?;
            phase("clock", since);
        }
        let since = Instant::now();
        set_up_round(&client, &campaign, r, day_zero).await?;
        if round_kind(r) == "emergency_response" {
            declare_alerts(&client, &campaign, r, round_start).await?;
        }
        sync_checks(&client, &campaign, r, options.concurrency, &checks_bar).await?;
        phase("site checks", since);
        let since = Instant::now();
        send_registers(&client, &campaign, |done| done == Some(r), done_state).await?;
        phase("registers", since);

        let since = Instant::now();
        sheets += acknowledge_sheets(&client, &campaign, r, simulated.then_some(options.gathering)).await?;
        phase("handover", since);

        if simulated {
            let since = Instant::now();
            client.move_clock_to(round_start + time::Duration::days(2)).await?;
            phase("clock", since);
        }
        let since = Instant::now();
        let (now_fixed, later): (Vec<Problem>, Vec<Problem>) = campaign.problems[r]
            .iter()
            .cloned()
            .partition(|p| matches!(p.fate, Fate::FixedOnTime | Fate::FixFailed(_)));
        rectify_and_verify(&client, &campaign, &now_fixed, options.concurrency, &problems_bar).await?;
        problems_bar.inc(later.iter().filter(|p| p.fate == Fate::Unresolved).count() as u64 * 2);
        late.extend(later.into_iter().filter(|p| p.fate == Fate::FixedLate));
        phase("fixes and verdicts", since);

        if options.speed > 0.0 {
            let due = Duration::from_secs_f64((r + 1) as f64 * ROUND_DAYS as f64 / options.speed);
            if let Some(rest) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
    }
    // The year ends: the late fixes come in after every deadline has passed.
    let year_end = OffsetDateTime::new_in_offset(
        day_zero + time::Duration::days(ROUNDS as i64 * ROUND_DAYS + YEAR_END_GRACE_DAYS),
        time::Time::from_hms(9, 0, 0).expect("morning"),
        shared::clock::SHANGHAI,
    );
    if simulated {
        let since = Instant::now();
        client.move_clock_to(year_end).await?;
        wait_for_overdue(&client, &campaign, &late, options.settle).await?;
        phase("clock", since);
    }
    let since = Instant::now();
    // The villages not supplied in the year are behind their schedule.
    send_registers(
        &client,
        &campaign,
        |done| done.is_none(),
        |register, _| {
            if register == "coal_to_gas_villages" { "lagging" } else { first_state(register) }
        },
    )
    .await?;
    phase("registers", since);
    let since = Instant::now();
    office_acts(&client, &campaign, year_end.date()).await?;
    phase("summonses and special inspections", since);
    let since = Instant::now();
    rectify_and_verify(&client, &campaign, &late, options.concurrency, &problems_bar).await?;
    checks_bar.finish();
    problems_bar.finish();
    phase("fixes and verdicts", since);

    let since = Instant::now();
    let published = settle(&client, &campaign, &expected, (&registers_before, &acts_before), options.settle).await?;
    phase("publication", since);
    Ok(Report {
        seed: options.seed,
        scale: options.scale,
        simulated_clock: simulated,
        teams_deployed: (campaign.teams.len() * ROUNDS) as i64,
        agree: published == expected,
        sent: expected,
        published,
        elapsed_secs: started.elapsed().as_secs_f64(),
        phases,
        handover_sheets: sheets,
    })
}

async fn set_up_teams(client: &Client, campaign: &Campaign) -> anyhow::Result<()> {
    stream::iter(&campaign.teams)
        .map(|team| {
            let members: Vec<String> = (1..=3).map(|m| format!("{} 队员{m}", team.id)).collect();
            client.put(
                format!("{}/v1/teams/{}", client.services.intake, team.id),
                json!({ "home_province": team.home_province, "members": members }),
            )
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// The state a register's items are entered in.
fn first_state(register: &str) -> &'static str {
    if register == "coal_to_gas_villages" { "planned" } else { "pending" }
}

/// Sends the register items `which` picks (by the round each is dealt with in) in the state
/// `state` gives, a batch per city and register.
async fn send_registers(
    client: &Client,
    campaign: &Campaign,
    which: impl Fn(Option<usize>) -> bool,
    state: impl Fn(&str, usize) -> &'static str,
) -> anyhow::Result<()> {
    let batches: Vec<(&RegisterPlan, Vec<Value>)> = campaign
        .registers
        .iter()
        .map(|plan| {
            let items = plan
                .items
                .iter()
                .enumerate()
                .filter(|(_, (_, done))| which(*done))
                .map(|(i, (id, _))| json!({ "id": id, "name": format!("模拟清单 {id}"), "state": state(plan.register, i) }))
                .collect();
            (plan, items)
        })
        .filter(|(_, items): &(_, Vec<Value>)| !items.is_empty())
        .collect();
    stream::iter(batches)
        .map(|(plan, items)| async move {
            let url = format!("{}/v1/cities/{}/registers/{}", client.services.intake, plan.city, plan.register);
            for chunk in items.chunks(BATCH) {
                let answer =
                    client.send(Method::POST, &url, &client.admin, Some(&json!({ "items": chunk })), &[]).await?;
                let refused = answer["results"].as_array().into_iter().flatten().find(|r| r["status"] == "refused");
                ensure!(refused.is_none(), "intake refused a simulated register item: {}", refused.unwrap());
            }
            Ok(())
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// Each city's emergency list, as the office would import it.
async fn send_emergency_lists(client: &Client, campaign: &Campaign) -> anyhow::Result<()> {
    stream::iter(&campaign.emergency_lists)
        .map(|(city, codes)| async move {
            let url = format!("{}/v1/cities/{city}/emergency-list", client.services.intake);
            for chunk in codes.chunks(BATCH) {
                let items: Vec<Value> = chunk
                    .iter()
                    .map(|code| {
                        json!({ "credit_code": code, "name": format!("模拟应急减排企业 {code}"),
                                        "measures": { "orange": "限产 30%", "red": "停产" } })
                    })
                    .collect();
                let answer =
                    client.send(Method::POST, &url, &client.admin, Some(&json!({ "items": items })), &[]).await?;
                let refused = answer["results"].as_array().into_iter().flatten().find(|r| r["status"] == "refused");
                ensure!(refused.is_none(), "intake refused a simulated emergency list entry: {}", refused.unwrap());
            }
            Ok(())
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// An orange alert over round `r` in every city with an emergency list: the round's checks of
/// listed enterprises are emergency-plan checks.
async fn declare_alerts(
    client: &Client,
    campaign: &Campaign,
    r: usize,
    round_start: OffsetDateTime,
) -> anyhow::Result<()> {
    let day = round_start.replace_time(time::Time::MIDNIGHT);
    let alert = json!({ "level": "orange", "from": shared::csv::timestamp(day),
                        "to": shared::csv::timestamp(day + time::Duration::days(ROUND_DAYS)) });
    stream::iter(campaign.emergency_lists.keys())
        .map(|city| {
            let url = format!("{}/v1/cities/{city}/alerts/{}", client.services.intake, campaign.round_id(r));
            client.put(url, alert.clone())
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// The registers' items, outstanding ones and lagging villages, all three registers together.
type RegisterCounts = (i64, i64, i64);
/// Summonses held, commitments not kept, special inspections concluded, problems in them.
type ActCounts = (i64, i64, i64, i64);

/// The campaign office's acts on `day`: each city summoned is summoned and the summons held the
/// same day with two commitments, which a team from another province follows up (the first
/// kept, the second not); the first city also gets a special inspection that links three of its
/// problems and is concluded.
async fn office_acts(client: &Client, campaign: &Campaign, day: Date) -> anyhow::Result<()> {
    let verification = &client.services.verification;
    let post = |path: String, token: String, body: Value| async move {
        client.send(Method::POST, &format!("{verification}{path}"), &token, Some(&body), &[]).await
    };
    for city in campaign.summoned() {
        let summons = post(
            "/v1/summonses".into(),
            client.admin.clone(),
            json!({ "city_code": city.code, "date": day, "place": "生态环境部约谈室",
                    "officials": [ { "name": format!("{} 市长", city.name_zh), "post": format!("{}人民政府市长", city.name_zh) } ],
                    "reasons": "模拟：逾期未整改问题较多，督办级别升至约谈。" }),
        )
        .await?;
        let id = summons["id"].as_str().context("a summons id")?;
        let held = post(
            format!("/v1/summonses/{id}/held"),
            client.admin.clone(),
            json!({ "held_on": day, "commitments": [
                { "text": "一个月内完成逾期问题整改", "follow_up_on": day + time::Duration::days(30) },
                { "text": "两个月内建立问题整改台账", "follow_up_on": day + time::Duration::days(60) } ] }),
        )
        .await?;
        let team = campaign.outside_team(city);
        let token = client.token(Role::Verifier, Some(&team.id), None);
        let commitments = held["commitments"].as_array().cloned().unwrap_or_default();
        ensure!(commitments.len() == 2, "a held summons answers its two commitments: {held}");
        for (commitment, result) in commitments.iter().zip(["kept", "not_kept"]) {
            let commitment = commitment["commitment_id"].as_str().context("a commitment id")?;
            post(
                format!("/v1/commitments/{commitment}/verdict"),
                token.clone(),
                json!({ "result": result, "team": team.id }),
            )
            .await?;
        }
    }
    let city = &reference::cities()[0];
    let team = campaign.outside_team(city);
    let case = post(
        "/v1/special-inspections".into(),
        client.admin.clone(),
        json!({ "city_code": city.code, "teams": [team.id],
                "scope": { "categories": [], "counties": [], "from": day - time::Duration::days(30), "to": day } }),
    )
    .await?;
    let case = case["id"].as_str().context("a special inspection id")?;
    post(
        format!("/v1/special-inspections/{case}/findings"),
        client.admin.clone(),
        json!({ "problems": campaign.case_findings() }),
    )
    .await?;
    post(
        format!("/v1/special-inspections/{case}/conclusion"),
        client.admin.clone(),
        json!({ "conclusion": "模拟：责任落实不到位，责成限期整改。", "concluded_on": day }),
    )
    .await?;
    Ok(())
}

/// What the public record holds of the office's acts: summonses held, commitments found not
/// kept, special inspections concluded, problems linked to them.
async fn public_acts(client: &Client) -> anyhow::Result<ActCounts> {
    let publication = &client.services.publication;
    let summonses = client.send(Method::GET, &format!("{publication}/v1/summonses"), &client.admin, None, &[]).await?;
    let cases =
        client.send(Method::GET, &format!("{publication}/v1/special-inspections"), &client.admin, None, &[]).await?;
    let summonses = summonses["items"].as_array().cloned().unwrap_or_default();
    let cases = cases["items"].as_array().cloned().unwrap_or_default();
    let unkept = summonses
        .iter()
        .flat_map(|s| s["commitments"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["result"] == "not_kept")
        .count();
    let linked: i64 = cases
        .iter()
        .map(|c| c["findings"]["linked"].as_i64().unwrap_or(0) + c["findings"]["reported"].as_i64().unwrap_or(0))
        .sum();
    Ok((summonses.len() as i64, unkept as i64, cases.len() as i64, linked))
}

/// The public figures of the three registers together: items, outstanding, lagging villages.
async fn register_figures(client: &Client) -> anyhow::Result<RegisterCounts> {
    let stats = client
        .send(Method::GET, &format!("{}/v1/stats", client.services.publication), &client.admin, None, &[])
        .await?;
    let registers = stats["registers"].as_object().cloned().unwrap_or_default();
    let sum = |k: &str| registers.values().map(|r| r[k].as_i64().unwrap_or(0)).sum::<i64>();
    Ok((sum("total"), sum("outstanding"), sum("lagging")))
}

/// Every fourth round is a special one, through the campaign's special kinds in turn.
fn round_kind(r: usize) -> &'static str {
    const SPECIAL: [&str; 5] =
        ["emergency_response", "scattered_polluting", "coal_to_gas", "special_emission_limit", "small_thermal_power"];
    if r % 4 == 3 { SPECIAL[(r / 4) % SPECIAL.len()] } else { "regular" }
}

async fn set_up_round(client: &Client, campaign: &Campaign, r: usize, day_zero: Date) -> anyhow::Result<()> {
    let round = campaign.round_id(r);
    let starts_on = day_zero + time::Duration::days(r as i64 * ROUND_DAYS);
    let cities: Vec<&str> = reference::cities().iter().map(|c| c.code.as_str()).collect();
    client
        .put(
            format!("{}/v1/rounds/{round}", client.services.intake),
            json!({ "starts_on": starts_on, "ends_on": starts_on + time::Duration::days(ROUND_DAYS - 1),
                    "kind": round_kind(r), "cities": cities }),
        )
        .await?;
    stream::iter(campaign.teams.iter().zip(&campaign.coverage[r]))
        .map(|(team, city)| {
            client.put(
                format!("{}/v1/rounds/{round}/teams/{}", client.services.intake, team.id),
                json!({ "cities": [city.code] }),
            )
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// The round's checks, synced team by team in batches of up to 1,000.
async fn sync_checks(
    client: &Client,
    campaign: &Campaign,
    r: usize,
    concurrency: usize,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut by_team: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for check in &campaign.checks[r] {
        by_team.entry(check["team"].as_str().unwrap_or_default()).or_default().push(check);
    }
    let batches: Vec<(&str, &[&Value])> =
        by_team.iter().flat_map(|(team, checks)| checks.chunks(BATCH).map(move |c| (*team, c))).collect();
    stream::iter(batches)
        .map(|(team, items)| async move {
            let token = client.token(Role::Inspector, Some(team), None);
            let url = format!("{}/v1/inspections/batch", client.services.intake);
            let answer = client.send(Method::POST, &url, &token, Some(&json!({ "items": items })), &[]).await?;
            let refused: Vec<&Value> = answer["results"]
                .as_array()
                .map(|rs| rs.iter().filter(|r| r["status"] == "refused").collect())
                .unwrap_or_default();
            ensure!(
                refused.is_empty(),
                "intake refused simulated checks: {}",
                Value::from(refused.into_iter().take(3).cloned().collect::<Vec<_>>())
            );
            bar.inc(items.len() as u64);
            Ok(())
        })
        .buffer_unordered(concurrency.clamp(1, 8))
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// Waits until every problem of the round is on a handover sheet, and has each city sign
/// for its sheets (签收). On the simulated clock (`gathering` given), once every problem is in
/// the ledger, the clock is moved past the gathering window rather than waiting it out. Returns
/// how many sheets were acknowledged.
async fn acknowledge_sheets(
    client: &Client,
    campaign: &Campaign,
    r: usize,
    gathering: Option<Gathering>,
) -> anyhow::Result<usize> {
    let round = campaign.round_id(r);
    let wanted = campaign.problems[r].len() as i64;
    let started = Instant::now();
    let mut moved = false;
    loop {
        let counts = client.ledger_count(&format!("round={round}")).await?;
        let (total, handed) = (counts["total"].as_i64().unwrap_or(0), counts["handed_over"].as_i64().unwrap_or(0));
        if handed >= wanted {
            break;
        }
        if let Some(gathering) = gathering
            && !moved
            && total >= wanted
        {
            // Every problem came in by now: past the window (or cut-off), every sheet is due.
            // Only assignment acts on it; the others catch up by the next move.
            let past = gathering.past(client.now().await?);
            client.move_clock_for(past, &[&client.services.assignment]).await?;
            moved = true;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(300),
            "round {round}: {handed} of {wanted} problems handed over ({total} in the ledger)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("{}/v1/handovers?round={round}&acknowledged=false", client.services.assignment);
    let listed = client.send(Method::GET, &url, &client.admin, None, &[]).await?;
    let sheets: Vec<(String, String)> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| Some((h["no"].as_str()?.to_string(), h["city_code"].as_str()?.to_string())))
        .collect();
    stream::iter(&sheets)
        .map(|(no, city)| async move {
            let token = client.token(Role::LocalGov, None, Some(city));
            let url = format!("{}/v1/handovers/{no}/acknowledge", client.services.assignment);
            client.send(Method::POST, &url, &token, Some(&json!({})), &[]).await.map(drop)
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(sheets.len())
}

/// A verifier team for a problem: not the finder, not from the city's province.
fn verifier<'a>(campaign: &'a Campaign, problem: &Problem) -> &'a str {
    let province = reference::province_of(&problem.city);
    let n = campaign.teams.len();
    (1..n)
        .map(|k| &campaign.teams[(problem.team + k) % n])
        .find(|t| t.home_province != province)
        .map_or("", |t| t.id.as_str())
}

/// The id of a problem's rectification or verdict (`step`: which of them), drawn from the
/// problem's id, so a second run of the same seed resends the same records ("already had").
fn record_id(problem: Uuid, step: u64) -> Uuid {
    let (high, low) = problem.as_u64_pair();
    Seeded(high ^ low.rotate_left(17) ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)).uuid()
}

/// Rectifications and verdicts for `problems`: the cities report (a batch per city, up to
/// 1,000 items), the verifier teams give their verdicts (a batch per team); a failed fix is
/// reported again and verified again.
async fn rectify_and_verify(
    client: &Client,
    campaign: &Campaign,
    problems: &[Problem],
    concurrency: usize,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    // Long projects report a stage first (one request each: progress has no batch).
    stream::iter(problems.iter().filter(|p| p.category == "coal_to_gas"))
        .map(|p| async move {
            let city = client.token(Role::LocalGov, None, Some(&p.city));
            let url = format!("{}/v1/problems/{}/progress", client.services.verification, p.id);
            let stage = json!({ "stage": "管网铺设完成", "percent_done": 60 });
            // 404/409: the handover has not reached verification yet.
            client.send(Method::POST, &url, &city, Some(&stage), &[404, 409]).await.map(drop)
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    let all: Vec<&Problem> = problems.iter().collect();
    let failing: Vec<&Problem> = problems.iter().filter(|p| matches!(p.fate, Fate::FixFailed(_))).collect();
    rectify(client, &all, 0, concurrency).await?;
    verify(client, campaign, &all, 0, concurrency, bar).await?;
    rectify(client, &failing, 1, concurrency).await?;
    verify(client, campaign, &failing, 1, concurrency, bar).await
}

/// The cities report `problems` rectified (`attempt` 0 first, 1 after a reopening).
async fn rectify(client: &Client, problems: &[&Problem], attempt: u64, concurrency: usize) -> anyhow::Result<()> {
    let mut by_city: BTreeMap<&str, Vec<&Problem>> = BTreeMap::new();
    for p in problems {
        by_city.entry(p.city.as_str()).or_default().push(p);
    }
    let batches: Vec<(&str, &[&Problem])> =
        by_city.iter().flat_map(|(city, ps)| ps.chunks(BATCH).map(move |c| (*city, c))).collect();
    stream::iter(batches)
        .map(|(city, ps)| async move {
            let token = client.token(Role::LocalGov, None, Some(city));
            let completed_at = shared::csv::timestamp(OffsetDateTime::now_utc() - time::Duration::hours(1));
            let items: Vec<Value> = ps
                .iter()
                .map(|p| {
                    json!({ "problem_id": p.id, "id": record_id(p.id, 2 * attempt),
                            "measures": if attempt == 0 { "已按要求整改" } else { "重新整改到位" },
                            "completed_at": completed_at })
                })
                .collect();
            // Refused on `problem_id` or `status`: the handover (or the reopening) has not
            // reached verification yet.
            client.field_batch("/v1/rectifications/batch", &token, items, &["problem_id", "status"]).await
        })
        .buffer_unordered(concurrency.clamp(1, 8))
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// The verifier teams give their verdicts on `problems`: on the first attempt the fate's first
/// verdict, on the second `rectified`.
async fn verify(
    client: &Client,
    campaign: &Campaign,
    problems: &[&Problem],
    attempt: u64,
    concurrency: usize,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut by_team: BTreeMap<&str, Vec<&Problem>> = BTreeMap::new();
    for p in problems {
        by_team.entry(verifier(campaign, p)).or_default().push(p);
    }
    let batches: Vec<(&str, &[&Problem])> =
        by_team.iter().flat_map(|(team, ps)| ps.chunks(BATCH).map(move |c| (*team, c))).collect();
    stream::iter(batches)
        .map(|(team, ps)| async move {
            let token = client.token(Role::Verifier, Some(team), None);
            let items: Vec<Value> = ps
                .iter()
                .map(|p| {
                    let result = match p.fate {
                        Fate::FixFailed(first) if attempt == 0 => first,
                        _ => "rectified",
                    };
                    json!({ "problem_id": p.id, "id": record_id(p.id, 2 * attempt + 1),
                            "result": result, "team": team, "note": "现场核查" })
                })
                .collect();
            client.field_batch("/v1/verdicts/batch", &token, items, &[]).await?;
            // A problem is done (a fix and a verdict) once its last verdict is given.
            let done = ps.iter().filter(|p| attempt == 1 || !matches!(p.fate, Fate::FixFailed(_))).count();
            bar.inc(done as u64 * 2);
            Ok(())
        })
        .buffer_unordered(concurrency.clamp(1, 8))
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// On the simulated clock, waits until the late problems are flagged overdue before they are
/// fixed, as they would be in a real year.
async fn wait_for_overdue(
    client: &Client,
    campaign: &Campaign,
    late: &[Problem],
    settle: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let rounds: Vec<String> = (0..ROUNDS).map(|r| campaign.round_id(r)).collect();
    let unresolved = campaign.problems.iter().flatten().filter(|p| p.fate == Fate::Unresolved).count() as i64;
    let wanted = late.len() as i64 + unresolved;
    loop {
        let counts = client.ledger_count("overdue=true").await?;
        let overdue: i64 = rounds.iter().map(|r| counts["by_round"][r].as_i64().unwrap_or(0)).sum();
        if overdue >= wanted {
            return Ok(());
        }
        ensure!(started.elapsed() < settle, "{overdue} of {wanted} problems flagged overdue");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The public statistics of the run's rounds, summed, once they agree with `expected` (or
/// when `settle` has passed).
async fn settle(
    client: &Client,
    campaign: &Campaign,
    expected: &Totals,
    (registers_before, acts_before): (&RegisterCounts, &ActCounts),
    settle: Duration,
) -> anyhow::Result<Totals> {
    let started = Instant::now();
    loop {
        let registers = register_figures(client).await?;
        let acts = public_acts(client).await?;
        let stats = client
            .send(Method::GET, &format!("{}/v1/stats", client.services.publication), &client.admin, None, &[])
            .await?;
        let mut published = Totals::default();
        for r in 0..ROUNDS {
            let figures = &stats["rounds"][campaign.round_id(r)];
            let n = |k: &str| figures[k].as_i64().unwrap_or(0);
            published.rounds += i64::from(figures.is_object());
            published.site_checks += n("site_checks");
            published.problems_found += n("problems_found");
            published.handed_over += n("handed_over");
            published.closed += n("closed");
            published.reopened += n("reopened");
            published.overdue += n("overdue");
            published.emergency_plan_checks += n("emergency_plan_checks");
        }
        published.register_items = registers.0 - registers_before.0;
        published.register_outstanding = registers.1 - registers_before.1;
        published.lagging_villages = registers.2 - registers_before.2;
        published.summonses_held = acts.0 - acts_before.0;
        published.commitments_unkept = acts.1 - acts_before.1;
        published.special_inspections = acts.2 - acts_before.2;
        published.special_inspection_findings = acts.3 - acts_before.3;
        if &published == expected || started.elapsed() > settle {
            return Ok(published);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assignment::domain::sheet_is_due;

    #[test]
    fn the_clock_goes_just_past_the_gathering_window_or_the_next_daily_cutoff() {
        let at = |h, m| {
            let day = Date::from_calendar_date(2019, time::Month::May, 9).expect("a date");
            OffsetDateTime::new_in_offset(day, time::Time::from_hms(h, m, 0).expect("a time"), shared::clock::SHANGHAI)
        };
        let window = Gathering { window: Duration::from_millis(300), daily_cutoff: None };
        let past = window.past(at(18, 0));
        assert!(sheet_is_due(1, at(18, 0), past, 300, None, 500));
        assert!(past - at(18, 0) <= time::Duration::seconds(3));

        let cutoff = time::Time::from_hms(17, 30, 0).expect("a time");
        let daily = Gathering { window: Duration::from_secs(10), daily_cutoff: Some(cutoff) };
        // Before the day's cut-off: that one; after it: the next day's.
        for now in [at(10, 0), at(18, 0)] {
            let past = daily.past(now);
            assert!(sheet_is_due(1, now, past, 10_000, Some(cutoff), 500), "{now} → {past}");
            assert!(!sheet_is_due(1, now, past - time::Duration::seconds(3), 10_000, Some(cutoff), 500));
        }
    }
}
