//! `skyledger up`: every service in its own process, restarted when it exits, stopped together
//! on Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::demo;

struct Supervised {
    service: &'static str,
    listen: String,
    child: Option<Child>,
    restarts: u32,
    restart_at: Option<Instant>,
}

/// The NATS users' passwords kept at `path`, created (mode 0600) on first use.
pub fn nats_passwords(path: &Path) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(serde_json::from_str(&text)?);
    }
    let passwords: std::collections::BTreeMap<String, String> = shared::messaging::NATS_USERS
        .iter()
        .map(|u| (u.to_string(), uuid::Uuid::new_v4().simple().to_string()))
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(serde_json::to_string_pretty(&passwords)?.as_bytes())?;
    Ok(passwords)
}

fn spawn(exe: &Path, service: &str, log_dir: &Path, env: &[(String, String)]) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_dir.join(format!("{service}.log")))?;
    let mut command = Command::new(exe);
    command.envs(env.iter().cloned());
    // Where deploy/up started a NATS server with users, each service connects as its own.
    if let Ok(path) = std::env::var("SKYLEDGER_NATS_PASSWORDS") {
        let passwords = nats_passwords(Path::new(&path))?;
        command.env("SKYLEDGER__NATS_USER", service);
        command.env("SKYLEDGER__NATS_PASSWORD", passwords.get(service).cloned().unwrap_or_default());
    }
    let child = command
        .arg("serve")
        .arg(service)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    Ok(child)
}

async fn wait_ready(http: &reqwest::Client, procs: &mut [Supervised], give_up: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + give_up;
    for p in procs.iter_mut() {
        let url = format!("http://{}/readyz", p.listen);
        loop {
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if let Some(child) = p.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("{} exited while starting ({status}); see its log", p.service);
            }
            anyhow::ensure!(Instant::now() < deadline, "{} was not ready at {url} in time", p.service);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

async fn stop(p: &mut Supervised) {
    let Some(mut child) = p.child.take() else { return };
    if let Some(pid) = child.id() {
        // SIGTERM lets the service finish the work in hand.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(25), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

pub async fn up(var_dir: &Path, with_demo: bool, shutdown: CancellationToken) -> anyhow::Result<()> {
    let log_dir: PathBuf = var_dir.join("log");
    std::fs::create_dir_all(&log_dir)?;
    // Create the deployment's signing key once, before five processes look for it.
    let (common, ()) = shared::config::load::<()>("up")?;
    shared::auth::TokenSigner::load_or_create(Path::new(&common.auth.signing_key_file))?;

    let exe = std::env::current_exe()?;
    let listens = [
        ("intake", intake::Config::load()?.intake.listen),
        ("assignment", assignment::Config::load()?.assignment.listen),
        ("verification", verification::Config::load()?.verification.listen),
        ("notification", notification::Config::load()?.notification.listen),
        ("publication", publication::Config::load()?.publication.listen),
        ("workbench", crate::workbench::load()?.0.listen),
    ];
    // People use the one origin: sign-in and receipt links in what notification sends point
    // there, unless configured otherwise. The demo has no mail server, so the admin who invites
    // is also answered the link.
    let origin = format!("http://{}", listens[5].1);
    let mut env = Vec::new();
    for (key, value) in [
        ("SKYLEDGER__NOTIFICATION__WORKBENCH_URL", origin.clone()),
        ("SKYLEDGER__NOTIFICATION__PUBLIC_BASE_URL", format!("{origin}/api/notification")),
        ("SKYLEDGER__NOTIFICATION__INVITATION_LINKS_IN_ANSWER", with_demo.to_string()),
    ] {
        if std::env::var_os(key).is_none() {
            env.push((key.to_string(), value));
        }
    }
    let mut procs = Vec::new();
    for (service, listen) in listens {
        procs.push(Supervised {
            service,
            listen,
            child: Some(spawn(&exe, service, &log_dir, &env)?),
            restarts: 0,
            restart_at: None,
        });
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    if let Err(e) = wait_ready(&http, &mut procs, Duration::from_secs(120)).await {
        for p in procs.iter_mut() {
            stop(p).await;
        }
        return Err(e.context(format!("logs are in {}", log_dir.display())));
    }

    let receiver = if with_demo { Some(demo::start(var_dir, &common, &procs_urls(&procs)).await?) } else { None };
    println!("\nSkyledger is up. Logs: {}/<service>.log", log_dir.display());
    println!("  workbench and public page (one origin)  {origin}/workbench  {origin}/");
    for p in &procs {
        println!("  {:<13} http://{}", p.service, p.listen);
    }
    if let Some(receiver) = &receiver {
        println!("  demo webhook receiver  {receiver}  (notices it gets are printed here)");
        println!("  demo tokens   {}/demo-tokens.env", var_dir.display());
    }
    println!("Ctrl-C stops everything.\n");

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for p in procs.iter_mut() {
            if let Some(child) = p.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                p.child = None;
                let backoff = Duration::from_secs(1 << p.restarts.min(5));
                eprintln!("{} exited ({status}); restarting in {}s", p.service, backoff.as_secs());
                p.restart_at = Some(Instant::now() + backoff);
                p.restarts += 1;
            }
            if p.child.is_none() && p.restart_at.is_some_and(|at| at <= Instant::now()) {
                p.restart_at = None;
                match spawn(&exe, p.service, &log_dir, &env) {
                    Ok(child) => p.child = Some(child),
                    Err(e) => {
                        eprintln!("cannot restart {}: {e}", p.service);
                        p.restart_at = Some(Instant::now() + Duration::from_secs(5));
                    }
                }
            }
        }
    }
    println!("stopping…");
    for p in procs.iter_mut() {
        stop(p).await;
    }
    Ok(())
}

fn procs_urls(procs: &[Supervised]) -> demo::Urls {
    let url = |i: usize| format!("http://{}", procs[i].listen);
    demo::Urls { intake: url(0), notification: url(3), origin: url(5) }
}
