//! `skyledger setup …`: campaign set-up from the command line, for the campaign office. Each
//! command is one PUT to intake's admin API, signed with the deployment's key unless a token is
//! given; the answer (or the problem+json refusal) is printed.

use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum Setup {
    /// A round: its dates, kind and cities.
    Round {
        id: String,
        #[arg(long)]
        starts_on: String,
        #[arg(long)]
        ends_on: String,
        /// regular, emergency_response, scattered_polluting, coal_to_gas, special_emission_limit, small_thermal_power
        #[arg(long, default_value = "regular")]
        kind: String,
        /// City codes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        cities: Vec<String>,
    },
    /// A team: its home province (e.g. 370000) and members.
    Team {
        id: String,
        #[arg(long)]
        home_province: String,
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// The cities a team covers in a round (never one of its own province).
    Assign {
        round: String,
        team: String,
        #[arg(long, value_delimiter = ',')]
        cities: Vec<String>,
    },
    /// A city's package: its ministry department, affiliated unit and provincial department.
    Package {
        city: String,
        #[arg(long)]
        ministry_department: String,
        #[arg(long)]
        affiliated_unit: String,
        #[arg(long)]
        provincial_department: String,
    },
}

impl Setup {
    fn request(self) -> (String, Value) {
        match self {
            Setup::Round { id, starts_on, ends_on, kind, cities } => (
                format!("/v1/rounds/{id}"),
                json!({ "starts_on": starts_on, "ends_on": ends_on, "kind": kind, "cities": cities }),
            ),
            Setup::Team { id, home_province, members } => {
                (format!("/v1/teams/{id}"), json!({ "home_province": home_province, "members": members }))
            }
            Setup::Assign { round, team, cities } => {
                (format!("/v1/rounds/{round}/teams/{team}"), json!({ "cities": cities }))
            }
            Setup::Package { city, ministry_department, affiliated_unit, provincial_department } => (
                format!("/v1/cities/{city}/package"),
                json!({ "ministry_department": ministry_department, "affiliated_unit": affiliated_unit,
                        "provincial_department": provincial_department }),
            ),
        }
    }

    /// Sends the set-up to intake at `url`; fails, printing the refusal, on a 4xx or 5xx.
    pub async fn apply(self, url: &str, token: &str) -> anyhow::Result<()> {
        let (path, body) = self.request();
        let response = reqwest::Client::new().put(format!("{url}{path}")).bearer_auth(token).json(&body).send().await?;
        let status = response.status();
        let text = response.text().await?;
        println!("{text}");
        anyhow::ensure!(status.is_success(), "PUT {path}: {status}");
        Ok(())
    }
}
