//! `skyledger`: the one binary. It runs one service (`serve`), all five in separate processes
//! (`up`), and the admin commands.

mod demo;
mod supervisor;
mod verify_feed;

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
        #[arg(value_parser = ["intake", "assignment", "verification", "notification", "publication"])]
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
    /// Check a publication service's public log: signatures, checkpoints, inclusion and
    /// consistency proofs. Names the first entry that does not match and exits 1.
    VerifyFeed {
        /// The publication service, e.g. http://127.0.0.1:8085
        url: String,
        /// The log's public key (hex) to trust, instead of the one the service announces.
        #[arg(long)]
        key: Option<String>,
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
        other => anyhow::bail!("no service {other}"),
    };
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), service, "service stopped with an error");
    }
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::install_crypto_provider();
    match Cli::parse().command {
        Command::Serve { service } => serve(&service).await,
        Command::Up { no_demo, var_dir } => supervisor::up(&var_dir, !no_demo, shutdown_on_signal()).await,
        Command::VerifyFeed { url, key } => std::process::exit(verify_feed::run(&url, key.as_deref()).await),
        Command::Token { command: TokenCommand::Create { role, team, jurisdiction, ttl_days } } => {
            let (common, ()) = shared::config::load::<()>("token")?;
            let signer = TokenSigner::load_or_create(std::path::Path::new(&common.auth.signing_key_file))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            println!("{}", signer.issue(role, team, jurisdiction, now, ttl_days * 86_400)?);
            Ok(())
        }
    }
}
