//! `skyledger deadline-policy`: the campaign office reads the deadline policy and sets a new
//! version of it through assignment's API; the new version applies to handover sheets made from
//! then on, without a restart.

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Map, Value, json};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force as JSON; with --versions, every version, oldest first.
    Show {
        #[arg(long)]
        versions: bool,
    },
    /// Set a new version: the policy in force with the days given changed, or the whole policy
    /// from a JSON file (`{"days": {...}, "working_day_categories": [...]}`).
    Set {
        /// `KEY=DAYS`, where KEY is `default`, a category (`dust`) or a category and severity
        /// (`dust_serious`); `KEY=` removes the key. Repeatable.
        #[arg(long = "days", value_name = "KEY=DAYS")]
        days: Vec<String>,
        /// Categories counted in working days (Monday to Friday), comma-separated: replaces the list.
        #[arg(long, value_delimiter = ',')]
        working_day_categories: Option<Vec<String>>,
        /// The whole policy as JSON, instead of changes to the one in force.
        #[arg(long, conflicts_with_all = ["days", "working_day_categories"])]
        file: Option<std::path::PathBuf>,
        /// Why the policy changes, for the record.
        #[arg(long)]
        reason: String,
    },
}

/// The policy in force with `changes` (`KEY=DAYS`, or `KEY=` to remove) and, when given, a new
/// list of working-day categories; answers the body of `PUT /v1/deadline-policy`.
pub fn changed(current: &Value, changes: &[String], working: Option<&[String]>, reason: &str) -> anyhow::Result<Value> {
    let mut days: Map<String, Value> = current["days"].as_object().cloned().unwrap_or_default();
    for change in changes {
        let (key, value) = change.split_once('=').with_context(|| format!("--days {change}: expected KEY=DAYS"))?;
        if value.trim().is_empty() {
            days.remove(key.trim());
        } else {
            let n: i64 = value.trim().parse().with_context(|| format!("--days {change}: DAYS is a whole number"))?;
            days.insert(key.trim().to_string(), n.into());
        }
    }
    let working = match working {
        Some(list) => json!(list),
        None => current["working_day_categories"].clone(),
    };
    Ok(json!({ "days": days, "working_day_categories": working, "reason": reason }))
}

async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("refused ({status}): {body}");
    }
    Ok(body)
}

pub async fn run(command: PolicyCommand, url: &str, token: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let current =
        || async { answer(http.get(format!("{url}/v1/deadline-policy")).bearer_auth(token).send().await?).await };
    let shown = match command {
        PolicyCommand::Show { versions: false } => current().await?,
        PolicyCommand::Show { versions: true } => {
            answer(http.get(format!("{url}/v1/deadline-policy/versions")).bearer_auth(token).send().await?).await?
        }
        PolicyCommand::Set { days, working_day_categories, file, reason } => {
            let body = match file {
                Some(file) => {
                    let mut body: Value = serde_json::from_slice(&std::fs::read(&file)?)
                        .with_context(|| format!("{} is not JSON", file.display()))?;
                    body["reason"] = reason.into();
                    body
                }
                None => changed(&current().await?, &days, working_day_categories.as_deref(), &reason)?,
            };
            let set =
                answer(http.put(format!("{url}/v1/deadline-policy")).bearer_auth(token).json(&body).send().await?)
                    .await?;
            eprintln!("deadline policy version {} in force for sheets made from now on", set["version"]);
            set
        }
    };
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_to_the_policy_in_force() {
        let current = json!({ "version": 3, "days": { "default": 30, "dust": 10, "dust_serious": 5 },
                              "working_day_categories": ["emergency_plan"] });
        let body = changed(&current, &["dust=4".into(), "dust_serious=".into()], None, "r").unwrap();
        assert_eq!(body["days"], json!({ "default": 30, "dust": 4 }));
        assert_eq!(body["working_day_categories"], json!(["emergency_plan"]));
        assert_eq!(body["reason"], "r");
        let body = changed(&current, &[], Some(&["dust".to_string()]), "r").unwrap();
        assert_eq!(body["working_day_categories"], json!(["dust"]));
        assert!(changed(&current, &["dust".into()], None, "r").is_err());
        assert!(changed(&current, &["dust=four".into()], None, "r").is_err());
    }
}
