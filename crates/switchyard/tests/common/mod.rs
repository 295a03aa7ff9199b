//! What several test binaries share: `switchyard sandbox` and `switchyard serve` as
//! child processes with their output kept whole, and waiting on a condition.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// Polls `check` until it holds; panics naming `what` once `limit` has passed.
/// Blocks the calling thread (child processes are waited for from plain threads).
pub fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`wait_for`] on a Tokio runtime, yielding instead of blocking its thread.
pub async fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every line a child writes to one pipe, from the first to the last: a thread reads
/// until end of file (all writers gone), and [`Lines::finish`] waits for it.
pub struct Lines {
    seen: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
}

impl Lines {
    pub fn read(pipe: impl Read + Send + 'static) -> Lines {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut pipe = BufReader::new(pipe);
            let mut line = Vec::new();
            // Bytes, not `lines()`: a line that is not UTF-8 must not end the reading
            // (the child would block on a full pipe, and later lines would be lost).
            while pipe.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                sink.lock().unwrap().push(text.strip_suffix('\n').unwrap_or(&text).to_owned());
                line.clear();
            }
        });
        Lines { seen, reader }
    }

    /// The lines read so far.
    pub fn so_far(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Every line, once the pipe has ended (call it after the child exited).
    pub fn finish(self) -> Vec<String> {
        let reader = self.reader;
        wait_for(Duration::from_secs(30), "the end of the child's output", || reader.is_finished());
        reader.join().expect("the reader thread");
        let lines = self.seen.lock().unwrap().clone();
        lines
    }
}

/// `switchyard sandbox --json [args]` in its own process (so the vendor outlives
/// server restarts), with the credentials it printed; killed when dropped.
pub struct Sandbox {
    child: Child,
    pub credentials: Value,
    _out: Lines,
    _err: Lines,
}

impl Sandbox {
    pub fn start(args: &[&str]) -> Sandbox {
        let mut child = Command::new(BIN)
            .args(["sandbox", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Lines::read(child.stdout.take().unwrap());
        let err = Lines::read(child.stderr.take().unwrap());
        wait_for(Duration::from_secs(60), "the sandbox credentials", || {
            !out.so_far().is_empty() || child.try_wait().unwrap().is_some()
        });
        let first = out.so_far().into_iter().next().unwrap_or_else(|| panic!("the sandbox ended: {:?}", err.so_far()));
        let credentials = serde_json::from_str(&first).expect("the first line is the credentials JSON");
        Sandbox { child, credentials, _out: out, _err: err }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LISTENING: &str = "serving the API at ";

/// The API address in a listen line: it ends at a space (text logs) or a quote (JSON logs).
fn listen_address(line: &str) -> Option<String> {
    let at = line.find(&format!("{LISTENING}http://"))?;
    let rest = &line[at + LISTENING.len()..];
    rest.split(|c: char| c.is_whitespace() || c == '"').next().map(str::to_owned)
}

/// `switchyard serve --listen 127.0.0.1:0 [args]` in its own process, started and
/// listening; killed when dropped, so a failing test leaves nothing running.
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT/elements/api-v2`, from the listen line.
    pub base: String,
    /// What it printed on standard output: one JSON document a line, all of it
    /// before it listened.
    pub stdout: Vec<Value>,
    /// The log up to and including the listen line, a newline after each line.
    pub startup: String,
    out: Option<Lines>,
    err: Option<Lines>,
}

/// How a `serve` process ended.
pub struct Ended {
    pub status: ExitStatus,
    /// Every log line, from the first to the last.
    pub log: String,
}

impl Serve {
    /// Starts `serve` in `dir` (its database and key file there) with `env` set on
    /// top of a clean environment, and waits until it listens.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut command = Command::new(BIN);
        command.current_dir(dir).args(["serve", "--listen", "127.0.0.1:0"]).args(args).env("NO_COLOR", "1");
        for name in ["SWITCHYARD_MASTER_KEY", "SWITCHYARD_MASTER_KEY_FILE", "SWITCHYARD_DATABASE_URL", "SWITCHYARD_DEBUG_CRASH"] {
            command.env_remove(name);
        }
        command.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let err = Lines::read(child.stderr.take().unwrap());
        let mut exited = None;
        wait_for(Duration::from_secs(60), "serve to listen", || {
            if err.so_far().iter().any(|l| listen_address(l).is_some()) {
                return true;
            }
            exited = child.try_wait().unwrap();
            exited.is_some()
        });
        if let Some(status) = exited {
            panic!("serve ended before listening ({status}); its log:\n{}", err.finish().join("\n"));
        }
        let lines = err.so_far();
        let at = lines.iter().position(|l| listen_address(l).is_some()).unwrap();
        let base = listen_address(&lines[at]).unwrap();
        let startup: String = lines[..=at].iter().map(|l| format!("{l}\n")).collect();

        // serve prints its JSON lines on stdout before it logs the listen line on
        // stderr (each println! has reached the pipe when it returns), so the pipe
        // now holds every one of them: take exactly what it holds, without waiting
        // for a quiet period. (Less than the pipe's 64 KiB, or serve would still be
        // blocked writing it and never have listened.)
        let held = rustix::io::ioctl_fionread(&stdout).expect("FIONREAD on the stdout pipe") as usize;
        let mut bytes = vec![0; held];
        stdout.read_exact(&mut bytes).unwrap();
        let text = String::from_utf8(bytes).expect("stdout is UTF-8");
        assert!(text.is_empty() || text.ends_with('\n'), "stdout ends in the middle of a line: {text:?}");
        let printed = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout holds JSON lines ({e}): {l}")))
            .collect();
        Serve { child, base, stdout: printed, startup, out: Some(Lines::read(stdout)), err: Some(err) }
    }

    /// SIGTERM; asserts that serve stops cleanly (its last log line says so) and
    /// answers the whole log, from the first line to the last.
    pub fn stop(self) -> String {
        let ended = self.signal("-TERM");
        assert!(ended.status.success(), "SIGTERM ends serve cleanly, got {}; log:\n{}", ended.status, ended.log);
        let last = ended.log.lines().last().unwrap_or_default();
        assert!(last.contains("stopped"), "the log ends with the stop: {last}");
        ended.log
    }

    /// Sends `signal` (as `kill` spells it, e.g. `-KILL`) and waits for the end.
    pub fn signal(mut self, signal: &str) -> Ended {
        let pid = self.child.id();
        if signal == "-TERM" {
            // serve installs its SIGTERM handler before it logs the listen line, so a
            // TERM right after start-up is a graceful stop (it once was not).
            assert!(
                catches(pid, 15) || self.child.try_wait().unwrap().is_some(),
                "serve logged its listen line before it could catch SIGTERM"
            );
        }
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
        self.wait()
    }

    /// Waits for the process to end by itself (a crash point, a signal) and reads
    /// its output to the end.
    pub fn wait(mut self) -> Ended {
        let status = self.child.wait().unwrap();
        let log = self.err.take().unwrap().finish().join("\n");
        let later = self.out.take().unwrap().finish();
        assert!(later.is_empty(), "serve printed on stdout after it listened: {later:?}");
        Ended { status, log }
    }
}

/// Whether process `pid` has a handler for signal `signo` (Linux: the `SigCgt` mask
/// in `/proc/PID/status`, bit `signo - 1`).
fn catches(pid: u32, signo: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:")).map(str::trim);
    mask.and_then(|m| u64::from_str_radix(m, 16).ok()).is_some_and(|m| m & (1 << (signo - 1)) != 0)
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// The process id (a node's id in the database starts with it: `{pid}-...`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}


/// The PostgreSQL server tests create their databases on:
/// `SWITCHYARD_TEST_POSTGRES`, by default the CI machine's.
pub fn postgres_admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A new database on the test PostgreSQL server, dropped with this value. Fails
/// (never skips) without a server.
pub struct PgDatabase {
    pub name: String,
    /// `postgres://USER@HOST:PORT/NAME`.
    pub url: String,
}

impl PgDatabase {
    pub async fn create(prefix: &str) -> PgDatabase {
        use sqlx::{Connection, Executor};
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("this test needs PostgreSQL at {admin} (SWITCHYARD_TEST_POSTGRES names another): {e}")
        });
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("sy_{prefix}_{}_{nanos}", std::process::id());
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        if url.username().is_empty() {
            url.set_username("postgres").unwrap();
        }
        PgDatabase { name, url: url.to_string() }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread of its own: drop may run inside a Tokio runtime, which must not block.
        let _ = std::thread::spawn(move || {
            use sqlx::{Connection, Executor};
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
                }
            });
        })
        .join();
    }
}

/// A TCP port on loopback that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `POST {api}/instances` with `body`, as `auth`: the answer's JSON whatever its
/// status (callers assert on it, e.g. that it has an `id`).
pub async fn create_instance(http: &reqwest::Client, api: &str, auth: &str, body: &Value) -> Value {
    http.post(format!("{api}/instances")).header("Authorization", auth).json(body).send().await.unwrap().json().await.unwrap()
}
