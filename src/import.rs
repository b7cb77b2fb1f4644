//! Spreadsheet imports for the offices that work in spreadsheets: rows of a CSV or XLSX file
//! are sent to a batch API a thousand at a time, with a progress bar; every refused line is
//! written, with its field and reason, to a report beside the file. Safe to run twice: the
//! rows carry their ids, and the APIs answer `already_had` for what they have.

use std::path::{Path, PathBuf};
use std::time::Duration;

use calamine::{Data, Reader};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// One data row: its line in the file (the header is line 1) and its cells by column name.
pub struct Row {
    pub line: usize,
    pub cells: Vec<(String, String)>,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.cells.iter().find(|(c, _)| c == column).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }
}

/// Reads a `.csv` (UTF-8) or `.xlsx` file's first sheet.
pub fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let table: Vec<Vec<String>> = match extension.as_str() {
        "csv" => {
            let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(path)?;
            reader.records().map(|r| r.map(|r| r.iter().map(str::to_owned).collect())).collect::<Result<_, _>>()?
        }
        "xlsx" => {
            let mut workbook: calamine::Xlsx<_> = calamine::open_workbook(path)?;
            let first =
                workbook.sheet_names().first().cloned().ok_or_else(|| anyhow::anyhow!("the workbook has no sheet"))?;
            let range = workbook.worksheet_range(&first)?;
            range.rows().map(|row| row.iter().map(cell_text).collect()).collect()
        }
        other => anyhow::bail!("{}: expected a .csv or .xlsx file, not .{other}", path.display()),
    };
    let mut lines = table.into_iter();
    let header: Vec<String> = lines.next().ok_or_else(|| anyhow::anyhow!("{} is empty", path.display()))?;
    let header: Vec<String> = header.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_string()).collect();
    Ok(lines
        .enumerate()
        .filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()))
        .map(|(i, cells)| Row { line: i + 2, cells: header.iter().cloned().zip(cells).collect() })
        .collect())
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
        Data::DateTime(d) => excel_serial_date(d.as_f64()),
        other => other.to_string(),
    }
}

/// An Excel date serial (days since 1899-12-30) as `YYYY-MM-DD`.
fn excel_serial_date(serial: f64) -> String {
    let epoch = time::macros::date!(1899 - 12 - 30);
    (epoch + time::Duration::days(serial.floor() as i64)).to_string()
}

/// Where the per-line report of `path` goes: `ledger.csv` → `ledger.errors.csv`.
pub fn report_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("import");
    path.with_file_name(format!("{stem}.errors.csv"))
}

#[derive(Debug, Default)]
pub struct Summary {
    pub created: usize,
    pub already_had: usize,
    pub refused: usize,
}

/// Sends `items` (each with its line) to `url` in batches, `wrap` making the batch body; writes
/// the refusals to the report. A batch the server fails as a whole is tried again.
pub async fn send(
    path: &Path,
    url: &str,
    token: &str,
    items: Vec<(usize, Value)>,
    wrap: impl Fn(Vec<Value>) -> Value,
    refused_early: Vec<(usize, String, String)>,
) -> anyhow::Result<Summary> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let bar = ProgressBar::new((items.len() + refused_early.len()) as u64);
    bar.set_style(ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}")?);
    bar.inc(refused_early.len() as u64);
    let mut summary = Summary { refused: refused_early.len(), ..Default::default() };
    let mut report = csv::Writer::from_path(report_path(path))?;
    report.write_record(["line", "field", "detail"])?;
    for (line, field, detail) in &refused_early {
        report.write_record([line.to_string(), field.clone(), detail.clone()])?;
    }
    for chunk in items.chunks(1000) {
        let body = wrap(chunk.iter().map(|(_, v)| v.clone()).collect());
        let answer = post_with_retries(&http, url, token, &body).await?;
        let results = answer["results"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(
            results.len() == chunk.len(),
            "the server answered {} results for {} items",
            results.len(),
            chunk.len()
        );
        for ((line, _), result) in chunk.iter().zip(results) {
            match result["status"].as_str() {
                Some("created") => summary.created += 1,
                Some("already_had") => summary.already_had += 1,
                _ => {
                    summary.refused += 1;
                    for error in result["errors"].as_array().cloned().unwrap_or_default() {
                        let field = error["field"].as_str().unwrap_or_default().to_string();
                        let detail = error["detail"].as_str().unwrap_or_default().to_string();
                        report.write_record([line.to_string(), field, detail])?;
                    }
                }
            }
        }
        bar.inc(chunk.len() as u64);
        bar.set_message(format!("{} refused", summary.refused));
    }
    report.flush()?;
    bar.finish();
    Ok(summary)
}

async fn post_with_retries(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=6 {
        match http.post(url).bearer_auth(token).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(r.json().await?),
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                anyhow::bail!("{url} refused the batch: {} {}", r.status(), r.text().await.unwrap_or_default())
            }
            Ok(r) if attempt == 6 => anyhow::bail!("{url}: {}", r.status()),
            Err(e) if attempt == 6 => return Err(e.into()),
            _ => {}
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    unreachable!("the loop returns on its last attempt")
}

/// Last year's ledger (columns `id`, `city_code`, `county_code`, `category`, `site_name`,
/// `closed_on`), into verification for re-checks.
pub async fn legacy_ledger(path: &Path, round: &str, url: &str, token: &str) -> anyhow::Result<Summary> {
    let rows = read_rows(path)?;
    let items = rows
        .iter()
        .map(|row| {
            (
                row.line,
                json!({
                    "id": row.get("id"), "city_code": row.get("city_code"), "county_code": row.get("county_code"),
                    "category": row.get("category"), "site_name": row.get("site_name"), "closed_on": row.get("closed_on"),
                }),
            )
        })
        .collect();
    let round = round.to_string();
    send(path, url, token, items, move |items| json!({ "round": round, "items": items }), vec![]).await
}

/// A city's emergency list (columns `credit_code`, `name`, and the measures at each alert level
/// in `yellow`, `orange`, `red`, any of them empty).
pub async fn emergency_list(path: &Path, url: &str, token: &str) -> anyhow::Result<Summary> {
    let rows = read_rows(path)?;
    let items = rows
        .iter()
        .map(|row| {
            let measures: serde_json::Map<String, Value> = ["yellow", "orange", "red"]
                .into_iter()
                .filter_map(|level| row.get(level).map(|m| (level.to_string(), json!(m))))
                .collect();
            (row.line, json!({ "credit_code": row.get("credit_code"), "name": row.get("name"), "measures": measures }))
        })
        .collect();
    send(path, url, token, items, |items| json!({ "items": items }), vec![]).await
}

/// A city's clean-up register (columns `id`, `name`, `county_code`, `state`).
pub async fn register(path: &Path, url: &str, token: &str) -> anyhow::Result<Summary> {
    let rows = read_rows(path)?;
    let items = rows
        .iter()
        .map(|row| {
            let item = json!({ "id": row.get("id"), "name": row.get("name"), "county_code": row.get("county_code"),
                               "state": row.get("state") });
            (row.line, item)
        })
        .collect();
    send(path, url, token, items, |items| json!({ "items": items }), vec![]).await
}

/// Site checks from a team's spreadsheet, one row a check with at most one problem: columns
/// `id`, `round`, `city_code`, `county_code`, `checked_at`, `site_name`, `credit_code`,
/// `address`, `lat`, `lon`, `coordinate_system`, `problem_id`, `category`, `severity`,
/// `description` (the problem columns empty for a check that found nothing).
pub async fn inspections(path: &Path, team: &str, url: &str, token: &str) -> anyhow::Result<Summary> {
    let rows = read_rows(path)?;
    let mut items = Vec::with_capacity(rows.len());
    let mut refused = vec![];
    for row in &rows {
        match inspection_of(row, team) {
            Ok(item) => items.push((row.line, item)),
            Err((field, detail)) => refused.push((row.line, field.to_string(), detail)),
        }
    }
    send(path, url, token, items, |items| json!({ "items": items }), refused).await
}

fn number(row: &Row, column: &'static str) -> Result<Value, (&'static str, String)> {
    let text = row.get(column).ok_or((column, "required".to_string()))?;
    text.parse::<f64>().map(Value::from).map_err(|_| (column, format!("{text:?} is not a number")))
}

/// One row as the JSON the batch API takes; a cell that cannot be read is refused here, named.
fn inspection_of(row: &Row, team: &str) -> Result<Value, (&'static str, String)> {
    let mut site = json!({
        "name": row.get("site_name"), "credit_code": row.get("credit_code"), "address": row.get("address"),
        "lat": number(row, "lat")?, "lon": number(row, "lon")?,
    });
    if let Some(system) = row.get("coordinate_system") {
        site["coordinate_system"] = json!(system.to_ascii_lowercase());
    }
    let problems = match row.get("category") {
        None => vec![],
        Some(category) => vec![json!({
            "id": row.get("problem_id"), "category": category, "severity": row.get("severity").unwrap_or("general"),
            "description": row.get("description"),
        })],
    };
    Ok(json!({
        "id": row.get("id"), "round": row.get("round"), "team": team, "city_code": row.get("city_code"),
        "county_code": row.get("county_code"), "checked_at": row.get("checked_at"), "site": site, "problems": problems,
    }))
}
