//! `switchyard bench`: the same load straight at the BigCommerce simulator and
//! through Switchyard, each in its own process, then a table of requests/s,
//! p50 and p99 for both, their ratio, and Switchyard's resident memory.
//!
//! Figures, not a pass/fail test: the machine's other work moves them. The load
//! generator shares the machine with both servers, equally for both paths.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

pub struct BenchOptions {
    /// Requests per measured run (each endpoint, concurrency and path).
    pub requests: usize,
    /// Client counts to run, e.g. [1, 32].
    pub concurrency: Vec<usize>,
    /// `pageSize` of the list call.
    pub page_size: usize,
    /// A PostgreSQL database to run Switchyard on (`None`: a new SQLite file).
    pub database: Option<String>,
}

/// A child process killed when dropped, so a failed run leaves nothing behind.
pub(crate) struct Process(Child);

impl Process {
    pub(crate) fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP call to repeat: where, and with which credentials.
#[derive(Clone)]
struct Target {
    url: String,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    Basic(String, String),
    Header(String),
}

struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    if options.requests == 0 || options.concurrency.is_empty() {
        bail!("--requests and --concurrency must not be empty");
    }
    let exe = std::env::current_exe().context("finding the switchyard binary")?;
    let dir = tempfile::tempdir().context("a scratch directory")?;

    let (sandbox, credentials) = start_sandbox(&exe)?;
    let bc = &credentials["bigcommerce"];
    let store_url = text(bc, "storeUrl")?;
    let (username, token) = (text(bc, "username")?, text(bc, "apiToken")?);
    let (server, api, authorization) = start_server_with(&exe, dir.path(), options.database.as_deref(), &[])?;

    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let created: Value = http
        .post(format!("{api}/instances"))
        .header("Authorization", &authorization)
        .json(&json!({"element": {"key": "bigcommerce"}, "name": "bench", "configuration": {
            "username": username, "password": token, "store.url": store_url}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let hub_auth = format!("{authorization}, Element {}", text(&created, "token")?);
    let order_id = first_order_id(&http, &store_url, &username, &token).await?;

    let direct = Auth::Basic(username.clone(), token.clone());
    let through = Auth::Header(hub_auth);
    let size = options.page_size;
    let cases = [
        (
            format!("GET /orders?pageSize={size}"),
            Target { url: format!("{store_url}/orders?limit={size}&page=1"), auth: direct.clone() },
            Target { url: format!("{api}/hubs/ecommerce/orders?pageSize={size}"), auth: through.clone() },
        ),
        (
            "GET /orders/{id}".to_owned(),
            Target { url: format!("{store_url}/orders/{order_id}"), auth: direct },
            Target { url: format!("{api}/hubs/ecommerce/orders/{order_id}"), auth: through },
        ),
    ];

    println!(
        "switchyard bench: {} requests per run; simulator and Switchyard ({}) in their own processes",
        options.requests,
        backend(options.database.as_deref())
    );
    println!();
    println!("| call | clients | direct req/s | direct p50 | direct p99 | switchyard req/s | switchyard p50 | switchyard p99 | throughput ratio | added p50 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, vendor, hub) in &cases {
        for &clients in &options.concurrency {
            // Warm both paths (connections, caches, the allocator) before measuring.
            load(&http, vendor, clients, clients * 20).await?;
            load(&http, hub, clients, clients * 20).await?;
            let d = load(&http, vendor, clients, options.requests).await?;
            let s = load(&http, hub, clients, options.requests).await?;
            println!(
                "| {name} | {clients} | {:.0} | {} | {} | {:.0} | {} | {} | {:.0}% | {} |",
                d.per_second,
                ms(d.p50),
                ms(d.p99),
                s.per_second,
                ms(s.p50),
                ms(s.p99),
                100.0 * s.per_second / d.per_second,
                ms(s.p50.saturating_sub(d.p50)),
            );
        }
    }
    print_rss(&server);
    drop(server);
    drop(sandbox);
    Ok(())
}

/// The server's resident memory, after a blank line.
pub(crate) fn print_rss(server: &Process) {
    println!();
    match rss_kib(server.id()) {
        Some(kib) => println!("Switchyard resident memory after the runs: {:.1} MB", kib as f64 / 1024.0),
        None => println!("Switchyard resident memory: unavailable (no /proc here)"),
    }
}

pub(crate) fn text(v: &Value, key: &str) -> anyhow::Result<String> {
    v[key].as_str().map(str::to_owned).with_context(|| format!("'{key}' missing in {v}"))
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `requests` calls spread over `clients` concurrent loops; every answer must be 200.
async fn load(http: &reqwest::Client, target: &Target, clients: usize, requests: usize) -> anyhow::Result<Figures> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (http, target, next) = (http.clone(), target.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                let request = http.get(&target.url);
                let request = match &target.auth {
                    Auth::Basic(u, p) => request.basic_auth(u, Some(p)),
                    Auth::Header(h) => request.header("Authorization", h),
                };
                let t = Instant::now();
                let response = request.send().await?;
                let status = response.status();
                response.bytes().await?;
                took.push(t.elapsed());
                if status != 200 {
                    bail!("{} answered {status}", target.url);
                }
            }
            Ok(took)
        }));
    }
    let mut took = Vec::with_capacity(requests);
    for task in tasks {
        took.extend(task.await??);
    }
    let elapsed = started.elapsed();
    took.sort_unstable();
    let at = |q| quantile(&took, q).unwrap_or_default();
    Ok(Figures { per_second: took.len() as f64 / elapsed.as_secs_f64(), p50: at(0.50), p99: at(0.99) })
}

/// The value below which a share `q` (0 to 1) of the `sorted` values lie; `None`
/// when there are none.
pub(crate) fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((sorted.len() as f64 * q) as usize).min(last)])
}

pub(crate) async fn first_order_id(http: &reqwest::Client, store_url: &str, user: &str, token: &str) -> anyhow::Result<i64> {
    let orders: Value =
        http.get(format!("{store_url}/orders?limit=1")).basic_auth(user, Some(token)).send().await?.json().await?;
    orders[0]["id"].as_i64().context("the simulator has no orders")
}

pub(crate) fn start_sandbox(exe: &Path) -> anyhow::Result<(Process, Value)> {
    let mut child = Command::new(exe)
        .args(["sandbox", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting switchyard sandbox")?;
    let stdout = child.stdout.take().context("sandbox stdout")?;
    let process = Process(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    Ok((process, serde_json::from_str(&line).context("the sandbox's credentials line")?))
}

/// The database a run measures, for its title line.
pub(crate) fn backend(database: Option<&str>) -> &'static str {
    if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

/// `serve` on a fresh database, loopback allowed, with `extra` flags; its API base
/// and the first tenant's Authorization. The database is a new SQLite file in
/// `dir`, or `database` (PostgreSQL), which must hold no installation yet: the
/// first tenant and the key file (in `dir`) are made for this run.
pub(crate) fn start_server_with(
    exe: &Path,
    dir: &Path,
    database: Option<&str>,
    extra: &[&str],
) -> anyhow::Result<(Process, String, String)> {
    let (process, api, authorization) = spawn_serve(exe, dir, database, extra, true)?;
    Ok((process, api, authorization.context("serve printed no first tenant")?))
}

/// One more `serve` node on the installation a [`start_server_with`] made (the
/// same `dir`, so the same key file, and the same `database`): the process and
/// its API base URL.
pub(crate) fn start_another_node(exe: &Path, dir: &Path, database: Option<&str>, extra: &[&str]) -> anyhow::Result<(Process, String)> {
    let (process, api, _) = spawn_serve(exe, dir, database, extra, false)?;
    Ok((process, api))
}

/// Starts `serve` and reads, when `first`, the first tenant's Authorization it
/// prints on standard output, then its listen line from the log.
fn spawn_serve(
    exe: &Path,
    dir: &Path,
    database: Option<&str>,
    extra: &[&str],
    first: bool,
) -> anyhow::Result<(Process, String, Option<String>)> {
    if database.is_some_and(|url| !crate::database::is_postgres(url)) {
        bail!("--database must name a PostgreSQL database (postgres://...); without it the benchmark uses a new SQLite file");
    }
    let mut command = Command::new(exe);
    command.current_dir(dir).args(["serve", "--listen", "127.0.0.1:0", "--outbound-allow", "127.0.0.1"]);
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    let mut child = command
        .args(extra)
        .env("NO_COLOR", "1")
        .env("SWITCHYARD_LOG", "warn,switchyard=info")
        .env_remove("SWITCHYARD_MASTER_KEY")
        .env_remove("SWITCHYARD_MASTER_KEY_FILE")
        .env_remove("SWITCHYARD_DATABASE_URL")
        .env_remove("SWITCHYARD_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting switchyard serve")?;
    let (stdout, stderr) = (child.stdout.take().context("serve stdout")?, child.stderr.take().context("serve stderr")?);
    let process = Process(child);
    let mut authorization = None;
    if first {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let Some(a) = v["authorization"].as_str() {
                    authorization = Some(a.to_owned());
                    break;
                }
            }
        }
        if authorization.is_none() {
            // serve ended (or made no tenant): say why, with the end of its log.
            let log: Vec<String> = BufReader::new(stderr).lines().map_while(|l| l.ok()).collect();
            let tail = log[log.len().saturating_sub(5)..].join("\n");
            bail!(
                "serve printed no first tenant: the benchmark needs a database without an installation \
                 (a new, throwaway PostgreSQL database for each run; a run leaves its instances there). serve said:\n{tail}"
            );
        }
    } else {
        // A node joining an installation prints nothing there; never let it block.
        std::thread::spawn(move || BufReader::new(stdout).lines().for_each(drop));
    }
    let mut api = None;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(at) = line.find("serving the API at ") {
            api = line[at + "serving the API at ".len()..].split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((process, api.context("serve printed no listen line")?, authorization))
}

/// Resident set size of a process, from /proc (Linux).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
