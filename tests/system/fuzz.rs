//! Every operation of every service, as its own `/openapi.json` describes it, gets generated
//! requests: valid-shaped ones and malformed ones (wrong types, missing fields, huge strings,
//! odd unicode, bad UUIDs and path parameters, wrong content types, no, bad, expired and foreign
//! tokens, and every role's token). None may answer 5xx; every 4xx is problem+json (Open311's
//! own error documents aside); a body over the limit is 413.
//!
//! The generator is seeded: the seed is printed, and `SKYLEDGER_FUZZ_SEED` repeats a run;
//! `SKYLEDGER_FUZZ_CASES` (25) sets the generated requests per operation.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Map, Value, json};
use shared::auth::{Role, TokenSigner};
use shared::testing::{SERVICES, Stack, WebhookReceiver};
use uuid::Uuid;

use crate::support::*;

/// Strings that have broken parsers, databases and templates before.
const NASTY: &[&str] = &[
    "",
    " ",
    "\0",
    "null",
    "not-a-uuid",
    "00000000-0000-0000-0000-00000000000g",
    "-1",
    "0",
    "99999999999999999999999999",
    "1e999",
    "NaN",
    "'; DROP TABLE intake.problems; --",
    "../../../../etc/passwd",
    "%00%2e%2e",
    "<script>alert(1)</script>",
    "\u{202e}gnp.exe",
    "\u{feff}\u{200b}\u{2028}",
    "😀🏭💨",
    "Z̴̡̛͓͎a̷̢͎͚l̸͙̼g̶̱͝o̵̧",
    "１３０５００",
    "2019-02-30",
    "2019-05-09T25:61:00+08:00",
    "whsec_",
    "http://[::1",
    "javascript:alert(1)",
];

/// JSON values of every type, to put where another type belongs.
fn wrong_values(rng: &mut StdRng) -> Value {
    let huge = "测".repeat(rng.gen_range(20_000..60_000));
    let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
    let choices = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e308),
        json!(-9_223_372_036_854_775_808i64),
        json!(u64::MAX),
        json!([]),
        json!({}),
        json!([1, "a", null]),
        json!({ "unexpected": { "deeply": [1, 2, 3] } }),
        Value::String(huge),
        Value::String(NASTY.choose(rng).unwrap().to_string()),
        deep,
    ];
    choices.choose(rng).unwrap().clone()
}

struct Generator<'a> {
    rng: StdRng,
    doc: &'a Value,
}

impl Generator<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let mut target = self.doc;
                for part in reference.trim_start_matches("#/").split('/') {
                    target = &target[part];
                }
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// A value of the schema's shape.
    fn valid(&mut self, schema: &Value, depth: usize) -> Value {
        let schema = self.resolve(schema).clone();
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
            return choices.choose(&mut self.rng).cloned().unwrap_or(Value::Null);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                let branch = branches.choose(&mut self.rng).cloned().unwrap_or(Value::Null);
                return self.valid(&branch, depth + 1);
            }
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for part in parts {
                if let Value::Object(object) = self.valid(part, depth + 1) {
                    merged.extend(object);
                }
            }
            return Value::Object(merged);
        }
        let kind = match schema.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(types)) => {
                let non_null: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                if non_null.is_empty() || self.rng.gen_ratio(1, 8) {
                    "null".into()
                } else {
                    non_null.choose(&mut self.rng).unwrap().as_str().unwrap_or("string").to_string()
                }
            }
            _ if schema.get("properties").is_some() => "object".into(),
            _ => "string".into(),
        };
        match kind.as_str() {
            "object" => {
                let required: Vec<String> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let mut object = Map::new();
                if depth < 8 {
                    for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
                        if required.contains(name) || self.rng.gen_bool(0.6) {
                            let value = self.valid(property, depth + 1);
                            object.insert(name.clone(), value);
                        }
                    }
                }
                Value::Object(object)
            }
            "array" => {
                let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
                let max = schema.get("maxItems").and_then(Value::as_u64).unwrap_or(3).min(3) as usize;
                let len = if depth < 8 { self.rng.gen_range(min..=max.max(min)) } else { 0 };
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                Value::Array((0..len).map(|_| self.valid(&items, depth + 1)).collect())
            }
            "integer" => {
                let min = schema.get("minimum").and_then(Value::as_i64).unwrap_or(0);
                let max = schema.get("maximum").and_then(Value::as_i64).unwrap_or(min + 100);
                json!(self.rng.gen_range(min..=max.max(min)))
            }
            "number" => {
                let min = schema.get("minimum").and_then(Value::as_f64).unwrap_or(-90.0);
                let max = schema.get("maximum").and_then(Value::as_f64).unwrap_or(90.0);
                json!(self.rng.gen_range(min..=max.max(min)))
            }
            "boolean" => json!(self.rng.r#gen::<bool>()),
            "null" => Value::Null,
            _ => Value::String(self.string(&schema)),
        }
    }

    fn string(&mut self, schema: &Value) -> String {
        match schema.get("format").and_then(Value::as_str) {
            Some("uuid") => return Uuid::now_v7().to_string(),
            Some("date") => return format!("2019-05-{:02}", self.rng.gen_range(1..29)),
            Some("date-time") => return format!("2019-05-{:02}T10:20:00+08:00", self.rng.gen_range(1..29)),
            Some("uri" | "url") => return "http://127.0.0.1:9/hook".into(),
            Some("email") => return "someone@example.org".into(),
            _ => {}
        }
        let samples = [ROUND, FINDER, VERIFIER, XINGTAI, HANDAN, "130502", "370000", SECRET, "某某铸造厂", "x"];
        samples.choose(&mut self.rng).unwrap().to_string()
    }

    /// Breaks a value somewhere: removes a key, or puts a value of another type or a nasty
    /// string in its place.
    fn mutate(&mut self, value: &mut Value, depth: usize) {
        let descend = depth < 6 && self.rng.gen_bool(0.6);
        match value {
            Value::Object(object) if descend && !object.is_empty() => {
                let keys: Vec<String> = object.keys().cloned().collect();
                let key = keys.choose(&mut self.rng).unwrap().clone();
                match self.rng.gen_range(0..3) {
                    0 => {
                        object.remove(&key);
                    }
                    _ => self.mutate(object.get_mut(&key).unwrap(), depth + 1),
                }
            }
            Value::Array(items) if descend && !items.is_empty() => {
                let i = self.rng.gen_range(0..items.len());
                self.mutate(&mut items[i], depth + 1);
            }
            _ => *value = wrong_values(&mut self.rng),
        }
    }
}

/// Percent-encodes everything but the unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The tokens a request may carry, by name.
fn tokens(stack: &Stack) -> Vec<(&'static str, Option<String>)> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let foreign = TokenSigner::generate();
    vec![
        ("none", None),
        ("garbage", Some("Bearer garbage".into())),
        ("not bearer", Some("Basic YWRtaW46YWRtaW4=".into())),
        ("empty bearer", Some("Bearer ".into())),
        (
            "expired admin",
            Some(format!("Bearer {}", stack.signer.issue(Role::Admin, None, None, now - 7200, 3600).unwrap())),
        ),
        ("foreign admin", Some(format!("Bearer {}", foreign.issue(Role::Admin, None, None, now, 3600).unwrap()))),
        ("admin", Some(format!("Bearer {}", stack.admin()))),
        ("inspector", Some(format!("Bearer {}", inspector(stack)))),
        ("local_gov", Some(format!("Bearer {}", stack.token(Role::LocalGov, None, Some(XINGTAI))))),
        ("verifier", Some(format!("Bearer {}", stack.token(Role::Verifier, Some(VERIFIER), None)))),
    ]
}

struct Operation {
    service: &'static str,
    method: Method,
    path: String,
    spec: Value,
}

fn operations(service: &'static str, doc: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, spec) in item.as_object().into_iter().flatten() {
            if let Ok(method) = method.to_uppercase().parse::<Method>()
                && ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str())
            {
                let mut spec = spec.clone();
                // Parameters declared on the path item apply to each operation.
                if let Some(shared) = item.get("parameters").and_then(Value::as_array) {
                    let own = spec["parameters"].as_array().cloned().unwrap_or_default();
                    spec["parameters"] = Value::Array(shared.iter().cloned().chain(own).collect());
                }
                found.push(Operation { service, method, path: path.clone(), spec });
            }
        }
    }
    found
}

/// One generated request.
struct Case {
    url: String,
    token: &'static str,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

impl Case {
    fn describe(&self) -> String {
        let body = self.body.as_ref().map(|b| {
            let text = String::from_utf8_lossy(b);
            let mut short: String = text.chars().take(160).collect();
            if text.chars().count() > 160 {
                let _ = write!(short, "… ({} bytes)", b.len());
            }
            short
        });
        format!(
            "{} token={} content-type={:?} body={:?}",
            self.url.chars().take(300).collect::<String>(),
            self.token,
            self.content_type,
            body
        )
    }
}

fn make_case(
    generator: &mut Generator,
    stack: &Stack,
    op: &Operation,
    tokens: &[(&'static str, Option<String>)],
    valid_only: bool,
) -> Case {
    let rng_bad = |g: &mut Generator| !valid_only && g.rng.gen_ratio(1, 3);
    let params: Vec<Value> = op.spec["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| generator.resolve(p).clone())
        .collect();
    let mut path = op.path.clone();
    let mut query = Vec::new();
    for param in &params {
        let name = param["name"].as_str().unwrap_or_default();
        let schema = param.get("schema").cloned().unwrap_or(json!({ "type": "string" }));
        let value = if rng_bad(generator) {
            match generator.rng.gen_range(0..3) {
                0 => NASTY.choose(&mut generator.rng).unwrap().to_string(),
                1 => "a".repeat(generator.rng.gen_range(300..5_000)),
                _ => Uuid::now_v7().to_string(),
            }
        } else {
            match generator.valid(&schema, 0) {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            }
        };
        match param["in"].as_str() {
            Some("path") => path = path.replace(&format!("{{{name}}}"), &encode(&value)),
            Some("query") if valid_only || generator.rng.gen_bool(0.6) => {
                query.push(format!("{name}={}", encode(&value)))
            }
            _ => {}
        }
    }
    if !valid_only && generator.rng.gen_ratio(1, 6) {
        query.push(format!("{}={}", encode("未知"), encode(NASTY.choose(&mut generator.rng).unwrap())));
    }
    let mut url = format!("{}{path}", stack.url(op.service));
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }

    let (token, authorization) = if valid_only {
        tokens.iter().find(|(name, _)| *name == "admin").cloned().unwrap()
    } else {
        tokens.choose(&mut generator.rng).cloned().unwrap()
    };

    let body_schema = op.spec["requestBody"]["content"]["application/json"]["schema"].clone();
    let has_body = !body_schema.is_null();
    let mut content_type = has_body.then(|| "application/json".to_string());
    let mut body = None;
    if has_body {
        let mut value = generator.valid(&body_schema, 0);
        if rng_bad(generator) {
            for _ in 0..generator.rng.gen_range(1..=3) {
                generator.mutate(&mut value, 0);
            }
        }
        let mut bytes = serde_json::to_vec(&value).unwrap();
        if rng_bad(generator) {
            match generator.rng.gen_range(0..8) {
                0 => bytes.truncate(bytes.len() / 2),
                1 => bytes = b"".to_vec(),
                2 => bytes = b"{\"id\": \"\\ud800\"}".to_vec(),
                3 => bytes = [&b"\xef\xbb\xbf"[..], &bytes].concat(),
                4 => bytes = b"\xff\xfe{\x00}\x00".to_vec(),
                5 => content_type = Some("text/plain".into()),
                6 => content_type = None,
                _ => content_type = Some("application/xml".into()),
            }
        }
        body = Some(bytes);
    } else if rng_bad(generator) {
        // A body where none belongs.
        content_type = Some("application/json".into());
        body = Some(b"{\"unexpected\": true}".to_vec());
    }
    Case { url, token, authorization, content_type, body }
}

async fn send(stack: &Stack, method: &Method, case: &Case) -> Result<(u16, String, String), String> {
    let build = || {
        let mut request = stack.http.request(method.clone(), &case.url);
        if let Some(authorization) = &case.authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(content_type) = &case.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = &case.body {
            request = request.body(body.clone());
        }
        request
    };
    // A kept-alive connection the server closed just then fails the request before it was
    // sent; once more on a fresh connection tells that from a service that does not answer.
    let response = match build().send().await {
        Ok(response) => response,
        Err(_) => build().send().await.map_err(|e| format!("no answer: {}", error_chain(&e)))?,
    };
    let status = response.status().as_u16();
    let media = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = response.text().await.unwrap_or_default();
    Ok((status, media, text.chars().take(300).collect()))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(text, ": {c}");
        cause = c.source();
    }
    text
}

/// What is wrong with an answer, if anything.
fn judge(path: &str, status: u16, media: &str) -> Option<String> {
    if status >= 500 {
        return Some(format!("{status}"));
    }
    if (400..500).contains(&status) {
        let open311_own = path.starts_with("/open311")
            && (media.starts_with("application/json")
                || media.starts_with("text/xml")
                || media.starts_with("application/xml"));
        if !media.starts_with("application/problem+json") && !open311_own {
            return Some(format!("{status} as {media:?}, not problem+json"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_and_malformed_requests_to_every_operation_never_get_a_5xx() {
    let seed = std::env::var("SKYLEDGER_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    });
    let per_operation: usize = std::env::var("SKYLEDGER_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(25);
    println!("fuzz: seed {seed} (SKYLEDGER_FUZZ_SEED={seed} repeats it), {per_operation} requests per operation");

    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    // Something to find: one problem all the way to a handover sheet.
    let report = inspection(XINGTAI, Some("130502"), "模糊测试厂", &["dust"]);
    assert_eq!(post(&stack, "intake", "/v1/inspections", &inspector(&stack), report).await.0, 201);
    let tokens = tokens(&stack);
    let max_body: usize = 4 * 1024 * 1024;

    let mut failures = Vec::new();
    let (mut requests, mut by_status) = (0usize, std::collections::BTreeMap::<u16, usize>::new());
    let mut operations_seen = 0;
    for service in SERVICES {
        let (status, doc) = get(&stack, service, "/openapi.json", None).await;
        assert_eq!(status, 200, "{service} has no /openapi.json");
        let mut generator = Generator { rng: StdRng::seed_from_u64(seed ^ service.len() as u64), doc: &doc };
        let ops = operations(service, &doc);
        assert!(!ops.is_empty(), "{service} describes no operation");
        for op in &ops {
            operations_seen += 1;
            // Signing out revokes the token it is sent with: those cases get tokens of their own.
            let ends_session = op.path.ends_with("/sign-out");
            for i in 0..per_operation {
                let fresh = if ends_session { self::tokens(&stack) } else { Vec::new() };
                let case = make_case(&mut generator, &stack, op, if ends_session { &fresh } else { &tokens }, i == 0);
                requests += 1;
                match send(&stack, &op.method, &case).await {
                    Ok((status, media, text)) => {
                        *by_status.entry(status).or_default() += 1;
                        if let Some(wrong) = judge(&op.path, status, &media) {
                            failures.push(format!(
                                "{service} {} {} (case {i}): {wrong}: {text}\n    {}",
                                op.method,
                                op.path,
                                case.describe()
                            ));
                        }
                    }
                    Err(e) => failures.push(format!(
                        "{service} {} {} (case {i}): {e}\n    {}",
                        op.method,
                        op.path,
                        case.describe()
                    )),
                }
            }

            // A JSON body over the limit is refused 413, whatever it is.
            if !op.spec["requestBody"]["content"]["application/json"].is_null() {
                let fresh = if ends_session { self::tokens(&stack) } else { Vec::new() };
                let mut case = make_case(&mut generator, &stack, op, if ends_session { &fresh } else { &tokens }, true);
                let mut oversized = b"{\"padding\": \"".to_vec();
                oversized.resize(max_body + 1024, b'a');
                oversized.extend_from_slice(b"\"}");
                case.body = Some(oversized);
                case.content_type = Some("application/json".into());
                requests += 1;
                match send(&stack, &op.method, &case).await {
                    Ok((413, media, _)) if media.starts_with("application/problem+json") => {
                        *by_status.entry(413).or_default() += 1;
                    }
                    Ok((status, media, text)) => failures.push(format!(
                        "{service} {} {}: an oversized body got {status} {media:?}, not 413 problem+json: {text}",
                        op.method, op.path
                    )),
                    Err(e) => failures.push(format!("{service} {} {}: oversized body: {e}", op.method, op.path)),
                }
            }
        }
    }

    // Every service still answers, and nothing it logged was an internal error.
    for service in SERVICES {
        let (status, _) = get(&stack, service, "/healthz", None).await;
        assert_eq!(status, 200, "{service} is down after the fuzzing");
    }
    println!("fuzz: {operations_seen} operations, {requests} requests; answers by status: {by_status:?}");
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {requests} requests failed:\n{}\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n"),
        stack.logs()
    );
}
