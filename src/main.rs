//! `skyledger`: the one binary. It runs one service (`serve`), all five in separate processes
//! (`up`), and the admin commands.

mod deadline_policy;
mod demo;
mod import;
mod setup;
mod simulate;
mod supervisor;
mod verify_feed;
mod witness;
mod workbench;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use shared::auth::{Role, TokenSigner};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "skyledger", version, about = "The problem ledger for environmental supervision campaigns")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one service in this process.
    Serve {
        #[arg(value_parser = ["intake", "assignment", "verification", "notification", "publication", "workbench"])]
        service: String,
    },
    /// Run all five services, each in its own process, restarting any that exits; with demo
    /// recipients, tokens and a demo webhook receiver unless --no-demo.
    Up {
        #[arg(long)]
        no_demo: bool,
        /// Where the services' logs and the demo files go.
        #[arg(long, default_value = "var")]
        var_dir: PathBuf,
    },
    /// Invite a person by name to the workbench: they get a one-time sign-in link by e-mail.
    Invite {
        /// The person's name, as the audit log will show it.
        #[arg(long)]
        name: String,
        /// inspector, local_gov, verifier or admin.
        #[arg(long)]
        role: String,
        /// Inspectors and verifiers: their team.
        #[arg(long)]
        team: Option<String>,
        /// Local governments: a key city or a county of one.
        #[arg(long)]
        jurisdiction: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// The notification service; by default the configured one.
        #[arg(long)]
        url: Option<String>,
        /// An admin token; by default one signed with the deployment's key.
        #[arg(long, env = "SKYLEDGER_TOKEN")]
        token: Option<String>,
    },
    /// Campaign set-up: rounds, teams, the cities a team covers, city packages.
    Setup {
        #[command(subcommand)]
        what: setup::Setup,
        /// The intake service; by default the configured one.
        #[arg(long, global = true)]
        url: Option<String>,
        /// An admin token; by default one signed with the deployment's key.
        #[arg(long, global = true, env = "SKYLEDGER_TOKEN")]
        token: Option<String>,
    },
    /// Import a team's site checks from a spreadsheet (CSV or XLSX), with a progress bar and a
    /// per-line report of refused rows beside the file; safe to run twice.
    Import {
        file: PathBuf,
        /// The inspection team whose checks these are.
        #[arg(long)]
        team: String,
        /// The intake service; by default the configured one.
        #[arg(long)]
        url: Option<String>,
        /// An inspector token of the team; by default one signed with the deployment's key.
        #[arg(long, env = "SKYLEDGER_TOKEN")]
        token: Option<String>,
    },
    /// Import last year's ledger (CSV or XLSX: id, city_code, county_code, category, site_name,
    /// closed_on) so each of its problems is re-verified one by one.
    ImportLedger {
        file: PathBuf,
        /// What last year's ledger is called, e.g. 2018.
        #[arg(long)]
        round: String,
        /// The verification service; by default the configured one.
        #[arg(long)]
        url: Option<String>,
        /// An admin token; by default one signed with the deployment's key.
        #[arg(long, env = "SKYLEDGER_TOKEN")]
        token: Option<String>,
    },
    /// Import a city's heavy-pollution emergency list (CSV or XLSX: credit_code, name, and the
    /// measures at each alert level in columns yellow, orange, red), with a progress bar and a
    /// per-line report of refused rows beside the file; safe to run again (rows are updated).
    ImportEmergencyList {
        file: PathBuf,
        /// The city whose list it is (its 6-digit code).
        #[arg(long)]
        city: String,
        /// The intake service; by default the configured one.
        #[arg(long)]
        url: Option<String>,
        /// An admin token; by default one signed with the deployment's key.
        #[arg(long, env = "SKYLEDGER_TOKEN")]
        token: Option<String>,
    },
    /// Import a city's clean-up register (CSV or XLSX: id, name, county_code, state): the "两散"
    /// (`scattered_enterprises`, `coal_boilers`) or the `coal_to_gas_villages`, with a progress
    /// bar and a per-line report of refused rows; safe to run again (states are updated).
    ImportRegister {
        file: PathBuf,
        #[arg(long)]
        city: String,
        /// scattered_enterprises, coal_boilers or coal_to_gas_villages.
        #[arg(long)]
        register: String,
        /// The intake service; by default the configured one.
        #[arg(long)]
        url: Option<String>,
        /// An admin token; by default one signed with the deployment's key.
        #[arg(long, env = "SKYLEDGER_TOKEN")]
        token: Option<String>,
    },
    /// The deadline policy (days to rectify by category and severity): show it, or set a new
    /// version, which applies to handover sheets made from then on (no restart).
    DeadlinePolicy {
        #[command(subcommand)]
        command: deadline_policy::PolicyCommand,
        /// The assignment service; by default the configured one.
        #[arg(long, global = true)]
        url: Option<String>,
        /// An admin token; by default one signed with the deployment's key.
        #[arg(long, global = true, env = "SKYLEDGER_TOKEN")]
        token: Option<String>,
    },
    /// Check a publication service's public log: the signed checkpoint, every entry and its
    /// signature, the tiles, the root; with --state, that the log only grew since last time.
    /// Names the first entry that does not match and exits 1.
    VerifyFeed {
        /// The publication service, e.g. http://127.0.0.1:8085
        url: String,
        /// The log's public key (hex) to trust, instead of the one the service announces.
        #[arg(long)]
        key: Option<String>,
        /// Where to remember the tree verified, to prove next time that the log only grew.
        #[arg(long)]
        state: Option<std::path::PathBuf>,
        /// A witness's verifier key (`name+id+base64(0x04 || key)`) whose valid cosignature the
        /// checkpoint must carry; repeatable.
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// Check only this problem's record (its entries and their inclusion proofs), as its
        /// public page does.
        #[arg(long)]
        problem: Option<String>,
    },
    /// Print the public log's verifier key (`c2sp.org/signed-note`: `origin+id+base64`), which
    /// checks its checkpoints; the same as `verifier_key` of GET /v1/chain/key.
    LogKey,
    /// Run a witness of Skyledger logs (`c2sp.org/tlog-witness`): it cosigns a log's checkpoints
    /// as long as each extends the last it cosigned, and refuses a log that forks. Prints its
    /// verifier key, for the log's `witnesses` and for readers' `verify-feed --witness`.
    Witness {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// The witness's Ed25519 key (hex seed), created on first use.
        #[arg(long, default_value = "var/witness.key")]
        key: PathBuf,
        /// The witness's name, a schema-less URL such as `witness.bureau.example/1`.
        #[arg(long)]
        name: String,
        /// The verifier key of a log to witness (`/v1/chain/key`'s `verifier_key`); repeatable.
        #[arg(long = "log-key")]
        log_keys: Vec<String>,
        /// Where the witness remembers the tree it last cosigned for each log.
        #[arg(long, default_value = "var/witness-state.json")]
        state: PathBuf,
        /// Print the witness's verifier key and exit.
        #[arg(long)]
        print_vkey: bool,
    },
    /// Replay a seeded synthetic campaign year (22 rounds, 39 cities, 666,000 site checks and
    /// 52,000 problems at scale 1) against the HTTP APIs, driving the simulated clock when the
    /// deployment runs on one; prints what was sent beside the public statistics, as JSON.
    Simulate {
        /// Fraction of the campaign's volume: 0.01 is a small run for tests.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[arg(long, default_value_t = 2018)]
        seed: u64,
        /// Campaign days per real second at most; 0 runs as fast as the stack takes it.
        #[arg(long, default_value_t = 0.0)]
        speed: f64,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Seconds to wait at the end for the public statistics to agree.
        #[arg(long, default_value_t = 120)]
        settle_secs: u64,
        /// Assignment's gathering window, which the simulated clock is moved past once a
        /// round's problems are in the ledger; by default the configured one (with its daily
        /// cut-off, if one is configured).
        #[arg(long)]
        gathering_window_millis: Option<u64>,
        /// The services; by default the configured ones.
        #[arg(long)]
        intake: Option<String>,
        #[arg(long)]
        assignment: Option<String>,
        #[arg(long)]
        verification: Option<String>,
        #[arg(long)]
        publication: Option<String>,
        /// The deployment's signing key (hex seed), to sign the tokens of every role the year
        /// needs; by default the key file of the configuration.
        #[arg(long, env = "SKYLEDGER_SIGNING_KEY")]
        signing_key: Option<String>,
        /// Only write the year's site checks, as JSON lines, to this file (`-` for stdout).
        #[arg(long)]
        write_checks: Option<PathBuf>,
    },
    /// Write a nats-server configuration with a user per service (each may publish only its own
    /// subjects) and their passwords (created once, kept in DIR/passwords.json).
    NatsConfig {
        #[arg(long, default_value = "var/nats")]
        dir: PathBuf,
        #[arg(long, default_value_t = 4222)]
        port: u16,
        /// Write only the users (DIR/users.conf), to include in a cluster's configuration.
        #[arg(long)]
        users_only: bool,
        /// Write the nodes of a local JetStream cluster of this size instead (DIR/node-1.conf …):
        /// clients on PORT, PORT+1, …, routes on PORT+2000, PORT+2001, …; each node its own store.
        #[arg(long)]
        cluster: Option<usize>,
    },
    /// Tokens signed with the deployment's key.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new token, alone, on stdout.
    Create {
        #[arg(long)]
        role: Role,
        /// The team of an inspector or verifier.
        #[arg(long)]
        team: Option<String>,
        /// The city or county code of a local government.
        #[arg(long)]
        jurisdiction: Option<String>,
        #[arg(long, default_value_t = 30)]
        ttl_days: i64,
    },
    /// Print the deployment's public key (hex), which services check tokens with
    /// (`SKYLEDGER__AUTH__PUBLIC_KEY`).
    PublicKey,
    /// Revoke a token (given as the token or its id) for every service of the deployment.
    Revoke {
        token: String,
        #[arg(long)]
        reason: String,
        /// Any service of the deployment; by default the configured intake.
        #[arg(long)]
        url: Option<String>,
    },
}

/// Cancelled on SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        cancel.cancel();
    });
    token
}

async fn serve(service: &str) -> anyhow::Result<()> {
    let _telemetry = shared::telemetry::init(service);
    let shutdown = shutdown_on_signal();
    let result = match service {
        "intake" => intake::run(intake::Config::load()?, shutdown).await,
        "assignment" => assignment::run(assignment::Config::load()?, shutdown).await,
        "verification" => verification::run(verification::Config::load()?, shutdown).await,
        "notification" => notification::run(notification::Config::load()?, shutdown).await,
        "publication" => publication::run(publication::Config::load()?, shutdown).await,
        "workbench" => {
            let (config, upstreams) = workbench::load()?;
            workbench::run(config, upstreams, shutdown).await
        }
        other => anyhow::bail!("no service {other}"),
    };
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), service, "service stopped with an error");
    }
    result
}

/// A service's URL (`configured` gives where it listens, unless `url` is given) and a token
/// (one for `role` signed with the deployment's key, unless `token` is given), for the commands
/// that call a service's API.
fn target(
    url: Option<String>,
    configured: impl FnOnce() -> anyhow::Result<String>,
    token: Option<String>,
    role: Role,
    team: Option<String>,
) -> anyhow::Result<(String, String)> {
    let url = match url {
        Some(url) => url,
        None => format!("http://{}", configured()?),
    };
    let token = match token {
        Some(token) => token,
        None => deployment_token(role, team)?,
    };
    Ok((url, token))
}

fn intake_listen() -> anyhow::Result<String> {
    Ok(intake::Config::load()?.intake.listen)
}

/// An hour's token signed with the deployment's key, for the admin commands.
fn deployment_token(role: Role, team: Option<String>) -> anyhow::Result<String> {
    let (common, ()) = shared::config::load::<()>("token")?;
    let signer = TokenSigner::load_or_create(std::path::Path::new(&common.auth.signing_key_file))?;
    signer.issue(role, team, None, time::OffsetDateTime::now_utc().unix_timestamp(), 3600)
}

fn print_summary(summary: &import::Summary, file: &std::path::Path) {
    println!(
        "{} created, {} already had, {} refused (see {})",
        summary.created,
        summary.already_had,
        summary.refused,
        import::report_path(file).display()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::install_crypto_provider();
    match Cli::parse().command {
        Command::Serve { service } => serve(&service).await,
        Command::Up { no_demo, var_dir } => supervisor::up(&var_dir, !no_demo, shutdown_on_signal()).await,
        Command::Invite { name, role, team, jurisdiction, email, phone, url, token } => {
            let notification_listen = || Ok(notification::Config::load()?.notification.listen);
            let (url, token) = target(url, notification_listen, token, Role::Admin, None)?;
            let body = serde_json::json!({
                "name": name, "role": role, "team": team, "jurisdiction": jurisdiction, "email": email, "phone": phone,
            });
            let response =
                reqwest::Client::new().post(format!("{url}/v1/people")).bearer_auth(token).json(&body).send().await?;
            let status = response.status();
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            if !status.is_success() {
                anyhow::bail!("the invitation was refused ({status}): {answer}");
            }
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        Command::Setup { what, url, token } => {
            let (url, token) = target(url, intake_listen, token, Role::Admin, None)?;
            what.apply(&url, &token).await
        }
        Command::Import { file, team, url, token } => {
            let (url, token) = target(url, intake_listen, token, Role::Inspector, Some(team.clone()))?;
            let summary = import::inspections(&file, &team, &format!("{url}/v1/inspections/batch"), &token).await?;
            print_summary(&summary, &file);
            Ok(())
        }
        Command::ImportEmergencyList { file, city, url, token } => {
            let (url, token) = target(url, intake_listen, token, Role::Admin, None)?;
            let summary =
                import::emergency_list(&file, &format!("{url}/v1/cities/{city}/emergency-list"), &token).await?;
            print_summary(&summary, &file);
            Ok(())
        }
        Command::ImportRegister { file, city, register, url, token } => {
            let (url, token) = target(url, intake_listen, token, Role::Admin, None)?;
            let summary =
                import::register(&file, &format!("{url}/v1/cities/{city}/registers/{register}"), &token).await?;
            print_summary(&summary, &file);
            Ok(())
        }
        Command::ImportLedger { file, round, url, token } => {
            let verification_listen = || Ok(verification::Config::load()?.verification.listen);
            let (url, token) = target(url, verification_listen, token, Role::Admin, None)?;
            let summary =
                import::legacy_ledger(&file, &round, &format!("{url}/v1/legacy-problems/batch"), &token).await?;
            print_summary(&summary, &file);
            Ok(())
        }
        Command::DeadlinePolicy { command, url, token } => {
            let assignment_listen = || Ok(assignment::Config::load()?.assignment.listen);
            let (url, token) = target(url, assignment_listen, token, Role::Admin, None)?;
            deadline_policy::run(command, &url, &token).await
        }
        Command::Simulate {
            scale,
            seed,
            speed,
            concurrency,
            settle_secs,
            gathering_window_millis,
            intake,
            assignment,
            verification,
            publication,
            signing_key,
            write_checks,
        } => {
            anyhow::ensure!(scale > 0.0 && scale <= 10.0, "--scale must be in (0, 10]");
            if let Some(path) = write_checks {
                let today = time::OffsetDateTime::now_utc().to_offset(shared::clock::SHANGHAI).date();
                let mut out: Box<dyn std::io::Write> = if path.as_os_str() == "-" {
                    Box::new(std::io::stdout().lock())
                } else {
                    Box::new(std::fs::File::create(&path)?)
                };
                let mut out = std::io::BufWriter::new(&mut out);
                let n = simulate::write_checks(scale, seed, today, &mut out)?;
                eprintln!("{n} site checks written");
                return Ok(());
            }
            let (common, ()) = shared::config::load::<()>("simulate")?;
            let signer = match signing_key {
                Some(seed) => TokenSigner::from_seed_hex(&seed)?,
                None => TokenSigner::load_or_create(std::path::Path::new(&common.auth.signing_key_file))?,
            };
            let services = simulate::Services {
                intake: match intake {
                    Some(url) => url,
                    None => format!("http://{}", intake::Config::load()?.intake.listen),
                },
                assignment: match assignment {
                    Some(url) => url,
                    None => format!("http://{}", assignment::Config::load()?.assignment.listen),
                },
                verification: match verification {
                    Some(url) => url,
                    None => format!("http://{}", verification::Config::load()?.verification.listen),
                },
                publication: match publication {
                    Some(url) => url,
                    None => format!("http://{}", publication::Config::load()?.publication.listen),
                },
            };
            let gathering = match gathering_window_millis {
                Some(millis) => {
                    simulate::Gathering { window: std::time::Duration::from_millis(millis), daily_cutoff: None }
                }
                None => {
                    let configured = assignment::Config::load()?.assignment;
                    let cutoff =
                        configured.daily_cutoff.as_deref().map(assignment::domain::parse_cutoff).transpose()?;
                    simulate::Gathering {
                        window: std::time::Duration::from_millis(configured.gathering_window_millis),
                        daily_cutoff: cutoff,
                    }
                }
            };
            let options = simulate::Options {
                scale,
                seed,
                speed,
                concurrency,
                settle: std::time::Duration::from_secs(settle_secs),
                services,
                gathering,
            };
            let report = simulate::run(options, signer).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            anyhow::ensure!(report.agree, "the public statistics do not agree with what was sent");
            Ok(())
        }
        Command::VerifyFeed { url, key, state, witnesses, problem } => std::process::exit(
            verify_feed::run(&url, key.as_deref(), state.as_deref(), &witnesses, problem.as_deref()).await,
        ),
        Command::LogKey => {
            let config = publication::Config::load()?;
            let key_file = std::path::Path::new(&config.publication.checkpoint_key_file);
            let signer = publication::public_log::LogSigner::load_or_create(key_file, config.publication.origin())?;
            println!("{}", signer.verifier_key());
            Ok(())
        }
        Command::Witness { listen, key, name, log_keys, state, print_vkey } => {
            if print_vkey {
                println!("{}", witness::verifier_key(&key, &name)?);
                return Ok(());
            }
            let _telemetry = shared::telemetry::init("witness");
            let options = witness::Options { listen, key, name, log_keys, state };
            let result = witness::run(options, shutdown_on_signal()).await;
            if let Err(e) = &result {
                tracing::error!(error = format!("{e:#}"), "the witness stopped with an error");
            }
            result
        }
        Command::NatsConfig { dir, port, users_only, cluster } => {
            let (common, ()) = shared::config::load::<()>("nats")?;
            let passwords = supervisor::nats_passwords(&dir.join("passwords.json"))?;
            if let Some(size) = cluster {
                anyhow::ensure!(size >= 3 && size % 2 == 1, "a cluster keeps its quorum with 3, 5, … nodes");
                let nodes: Vec<shared::messaging::ClusterNode> = (0..size)
                    .map(|i| shared::messaging::ClusterNode {
                        name: format!("n{}", i + 1),
                        port: port + i as u16,
                        cluster_port: port + 2000 + i as u16,
                        store_dir: dir.join(format!("store-{}", i + 1)).to_string_lossy().into_owned(),
                    })
                    .collect();
                let users = shared::messaging::authorization(&common.namespace, &passwords);
                for i in 0..size {
                    let file = dir.join(format!("node-{}.conf", i + 1));
                    std::fs::write(&file, shared::messaging::cluster_node_config(&nodes, i, Some(&users)))?;
                    println!("{}", file.display());
                }
                return Ok(());
            }
            let (file, config) = if users_only {
                ("users.conf", shared::messaging::authorization(&common.namespace, &passwords))
            } else {
                let store = dir.join("store").to_string_lossy().to_string();
                ("nats.conf", shared::messaging::server_config(&common.namespace, port, &store, &passwords))
            };
            std::fs::write(dir.join(file), config)?;
            println!("{}", dir.join(file).display());
            Ok(())
        }
        Command::Token { command: TokenCommand::Create { role, team, jurisdiction, ttl_days } } => {
            let (common, ()) = shared::config::load::<()>("token")?;
            let signer = TokenSigner::load_or_create(std::path::Path::new(&common.auth.signing_key_file))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            println!("{}", signer.issue(role, team, jurisdiction, now, ttl_days * 86_400)?);
            Ok(())
        }
        Command::Token { command: TokenCommand::PublicKey } => {
            let (common, ()) = shared::config::load::<()>("token")?;
            println!(
                "{}",
                TokenSigner::load_or_create(std::path::Path::new(&common.auth.signing_key_file))?.public_key_hex()
            );
            Ok(())
        }
        Command::Token { command: TokenCommand::Revoke { token, reason, url } } => {
            let url = match url {
                Some(url) => url,
                None => format!("http://{}", intake::Config::load()?.intake.listen),
            };
            let response = reqwest::Client::new()
                .post(format!("{url}/v1/admin/tokens/revoke"))
                .bearer_auth(deployment_token(Role::Admin, None)?)
                .json(&serde_json::json!({ "token": token, "reason": reason }))
                .send()
                .await?;
            let status = response.status();
            println!("{}", response.text().await?);
            anyhow::ensure!(status.is_success(), "the revocation was refused: {status}");
            Ok(())
        }
    }
}
