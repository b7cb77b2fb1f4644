//! A Postgres cluster of the test's own: `initdb` into a temporary directory, started on a free
//! port with `pg_ctl`, so a test may stop, crash and start it without ever touching the
//! machine's shared cluster. `initdb` refuses to run as root: as root, every Postgres program
//! runs as the `postgres` user (`runuser -u postgres --`) in a directory made theirs.
//!
//! The binaries are `$SKYLEDGER_PG_BIN` (a directory), else the newest
//! `/usr/lib/postgresql/*/bin`, else the directory of `initdb` on the PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::free_port;

/// How a running cluster is brought down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Clients are disconnected, a checkpoint is written (`pg_ctl stop -m fast`).
    Fast,
    /// Every process quits at once without a checkpoint, as after a crash; the next start
    /// replays the WAL (`pg_ctl stop -m immediate`).
    Immediate,
}

pub struct PostgresServer {
    pub port: u16,
    bin: PathBuf,
    /// The cluster's directory (`data/`, `log`, the socket); owned by the user the server runs as.
    root: PathBuf,
    _dir: TempDir,
    running: bool,
}

/// Where the Postgres programs live.
pub fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SKYLEDGER_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").exists())
        .unwrap_or_else(|| panic!("no Postgres binaries found: set SKYLEDGER_PG_BIN to the directory of initdb"))
}

fn running_as_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

impl PostgresServer {
    /// Makes a fresh cluster and starts it; trust authentication for the user `postgres`.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("skyledger-pg-").tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        if running_as_root() {
            let (uid, gid) = postgres_user();
            chown(&root, uid, gid);
        }
        let mut server = Self { port: free_port(), bin: postgres_bin_dir(), root, _dir: dir, running: false };
        let data = server.data_dir();
        let out = server.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        server.launch();
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The directory of the Postgres programs this cluster runs (`pg_dump`, `psql` beside it).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The server's log, for a failing test's message.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Runs one of the Postgres programs as the cluster's owner.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }

    fn launch(&mut self) {
        // fsync off: a killed server loses nothing the OS already has, and only an OS crash
        // would need the flush; commits still write their WAL before they answer.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=200 \
             -c fsync=off -c full_page_writes=off -c shared_buffers=32MB",
            self.port,
            self.root.display()
        );
        let data = self.data_dir();
        let log = self.log_path();
        let out = self
            .run("pg_ctl", &["start", "-w", "-t", "60", "-D", path_str(&data), "-l", path_str(&log), "-o", &options]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
        assert!(self.wait_accepting(Duration::from_secs(30)), "Postgres did not accept connections");
    }

    fn wait_accepting(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let port = self.port.to_string();
            let out = self.run("pg_isready", &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-t", "2"]);
            if out.status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`: the maintenance database, for creating
    /// the test's own.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Brings the cluster down; its data stays for `start_again`.
    pub fn stop(&mut self, mode: StopMode) {
        if !self.running {
            return;
        }
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        let data = self.data_dir();
        let out = self.run("pg_ctl", &["stop", "-w", "-t", "60", "-m", mode, "-D", path_str(&data)]);
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
        self.running = false;
    }

    /// Starts a stopped cluster again on the same port.
    pub fn start_again(&mut self) {
        if !self.running {
            self.launch();
        }
    }

    /// Stops (as `mode` says) and starts again.
    pub fn restart(&mut self, mode: StopMode) {
        self.stop(mode);
        self.launch();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self.run("pg_ctl", &["stop", "-w", "-t", "30", "-m", "immediate", "-D", path_str(&data)]);
        }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

fn postgres_user() -> (u32, u32) {
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!entry.is_null(), "running as root needs a `postgres` user to run the private cluster");
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    let c_path = std::ffi::CString::new(path_str(path)).expect("no NUL");
    let done = unsafe { libc::chown(c_path.as_ptr(), uid, gid) };
    assert_eq!(done, 0, "cannot chown {} to postgres", path.display());
}
