//! `switchyard bench-scale`: what many instances cost — polling instances while
//! few polls are due, and hub calls spread over many instance tokens.
//!
//! The simulator (`switchyard sandbox`) and Switchyard (`serve`, a new SQLite file
//! or the PostgreSQL database given) run in their own processes. This process
//! creates N BigCommerce instances through the API (`POST /instances`, several at
//! once).
//!
//! With `--interval`, each instance polls the simulator's customers, orders and
//! products every `--interval` minutes with a local receiver as callback; once
//! every one is on the polling schedule and the start has settled, the server is
//! measured over `--seconds`: its CPU time (from /proc, as a share of one core),
//! the polls that fell due and were done, how late they were, its resident memory,
//! and the database's size. The schedule is read from the database by this
//! process, so reading it costs the server nothing. A new instance is first due
//! at a random point of its first interval, so about N / interval polls fall due
//! each second: with 10,000 instances at 15 minutes, 11 a second. The CPU share
//! includes those polls (three hub list calls each).
//!
//! With `--hot K1,K2,…`, for each K, `--clients` loops call
//! `GET /hubs/ecommerce/orders/{id}` over the first K instances' tokens in turn
//! for `--seconds` (after one warm-up pass over the K tokens): requests/s and its
//! share of the first K's rate, p50/p99, the server's CPU per call, new TCP
//! connections opened per second (the machine's `ActiveOpens`, from
//! /proc/net/snmp: the server's new vendor connections, as the load's own
//! connections stay open) and the server's RSS.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use switchyard_store::{PollTurn, Store};

use crate::bench::{rss_kib, start_sandbox, start_server_with, text};

pub struct ScaleBenchOptions {
    /// Instances to create.
    pub instances: usize,
    /// Their poll interval, minutes (`None`: no polling).
    pub interval: Option<f64>,
    /// Seconds measured (per hot-token count, for hub calls).
    pub seconds: u64,
    /// How many instances' tokens hub calls are spread over, one run each.
    pub hot: Vec<usize>,
    /// Concurrent hub call loops.
    pub clients: usize,
    /// Instances created at once.
    pub concurrency: usize,
    /// A PostgreSQL database to run Switchyard on (`None`: a new SQLite file).
    pub database: Option<String>,
}

/// A poll later than this share of its interval counts as late.
const LATE_SHARE: f64 = 0.1;
/// Time for the server to finish scheduling before the measure starts.
const SETTLE: Duration = Duration::from_secs(10);

pub async fn run(options: ScaleBenchOptions) -> anyhow::Result<()> {
    if options.instances == 0 || options.seconds == 0 || options.concurrency == 0 || options.clients == 0 {
        bail!("--instances, --seconds, --concurrency and --clients must be at least 1");
    }
    if options.interval.is_none() && options.hot.is_empty() {
        bail!("say what to measure: --interval (polling), --hot (hub calls over many tokens), or both");
    }
    if let Some(interval) = options.interval {
        if !interval.is_finite() || interval <= 0.0 || interval > 1440.0 {
            bail!("--interval must be minutes above 0 and at most 1440");
        }
        // Each instance's turn is counted once in the window (its next due time and
        // its last poll), so a window as long as an interval would count polls wrongly.
        if options.seconds as f64 >= interval * 60.0 {
            bail!("--seconds must be shorter than the interval ({interval} minutes = {} s)", interval * 60.0);
        }
    }
    if let Some(&k) = options.hot.iter().find(|&&k| k == 0 || k > options.instances) {
        bail!("--hot {k}: each count must be between 1 and --instances ({})", options.instances);
    }
    let exe = std::env::current_exe().context("finding the switchyard binary")?;
    let dir = tempfile::tempdir().context("a scratch directory")?;
    let (sandbox, credentials) = start_sandbox(&exe)?;
    let bc = &credentials["bigcommerce"];
    let store_url = text(bc, "storeUrl")?;
    let (username, token) = (text(bc, "username")?, text(bc, "apiToken")?);
    let (server, api, authorization) = start_server_with(&exe, dir.path(), options.database.as_deref(), &[])?;
    let database_url = match &options.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", dir.path().join("switchyard.db").display()),
    };

    // The callback: polls of unchanged records store no events, but polling
    // needs somewhere to deliver.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { axum::http::StatusCode::OK }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::builder().pool_max_idle_per_host(options.concurrency.max(options.clients)).build()?;
    let mut template = json!({"element": {"key": "bigcommerce"}, "configuration": {
        "username": username, "password": token, "store.url": store_url}});
    if let Some(interval) = options.interval {
        let configuration = &mut template["configuration"];
        configuration["event.notification.enabled"] = json!(true);
        configuration["event.vendor.type"] = json!("polling");
        configuration["event.poller.refresh_interval"] = json!(interval.to_string());
        configuration["event.notification.callback.url"] = json!(callback);
    }
    let started = Instant::now();
    let tokens = create_instances(&http, &api, &authorization, &template, options.instances, options.concurrency).await?;
    let creating = started.elapsed();
    println!(
        "switchyard bench-scale: {} BigCommerce instances ({}), created through the API in {:.1} s ({:.0}/s, {} at once)",
        options.instances,
        crate::bench::backend(options.database.as_deref()),
        creating.as_secs_f64(),
        options.instances as f64 / creating.as_secs_f64(),
        options.concurrency,
    );

    let store = Store::open(&database_url).await.context("opening the server's database to read its schedule")?;
    if let Some(interval) = options.interval {
        polling(&store, server.id(), options.instances, interval, options.seconds).await?;
    }
    if !options.hot.is_empty() {
        let order_id = crate::bench::first_order_id(&http, &store_url, &username, &token).await?;
        let url = format!("{api}/hubs/ecommerce/orders/{order_id}");
        let hub_auth: Vec<String> = tokens.iter().map(|t| format!("{authorization}, Element {t}")).collect();
        hub_curves(&http, &url, &hub_auth, &options, server.id()).await?;
    }
    store.close().await;
    drop(server);
    drop(sandbox);
    Ok(())
}

/// Creates `count` instances from `template` (named `scale-N`), `concurrency` at
/// once; their tokens, in creation order.
async fn create_instances(
    http: &reqwest::Client,
    api: &str,
    authorization: &str,
    template: &Value,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..concurrency {
        let (http, api, authorization, next, template) =
            (http.clone(), api.to_owned(), authorization.to_owned(), next.clone(), template.clone());
        creators.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    return anyhow::Ok(made);
                }
                let mut body = template.clone();
                body["name"] = Value::String(format!("scale-{n}"));
                let answer = http.post(format!("{api}/instances")).header("Authorization", &authorization).json(&body).send().await?;
                if !answer.status().is_success() {
                    bail!("creating instance {n}: {} {}", answer.status(), answer.text().await?);
                }
                let created: Value = answer.json().await?;
                made.push((n, text(&created, "token")?));
            }
        }));
    }
    let mut tokens = Vec::with_capacity(count);
    for creator in creators {
        tokens.extend(creator.await??);
    }
    tokens.sort_unstable_by_key(|(n, _)| *n);
    Ok(tokens.into_iter().map(|(_, token)| token).collect())
}

/// Waits until every instance is on the polling schedule, lets the start settle,
/// and prints what the server spent over `seconds` and how the due polls went.
async fn polling(store: &Store, pid: u32, instances: usize, interval: f64, seconds: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        let scheduled = store.poll_turns().await?.len();
        if scheduled >= instances {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {scheduled} of {instances} instances were on the polling schedule after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let scheduling = started.elapsed();
    tokio::time::sleep(SETTLE).await;

    let before = store.poll_turns().await?;
    let (t0, cpu0, wall0) = (switchyard_events::now_ms(), cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (t1, cpu1, wall) = (switchyard_events::now_ms(), cpu_ticks(pid), wall0.elapsed());
    let after = store.poll_turns().await?;
    let bytes = store.database_bytes().await?;
    let rss = rss_kib(pid);

    let figures = Figures::of(&before, &after, t0, t1);
    println!();
    println!(
        "Polling every {interval} min: all scheduled {:.1} s after the last was created; measured {seconds} s after {} s to settle",
        scheduling.as_secs_f64(),
        SETTLE.as_secs()
    );
    println!();
    println!("| instances | interval | server CPU (% of one core) | polls due | polls done | late (> {:.0}% of the interval, or not done) | lag p50 | lag p99 | RSS | database |", LATE_SHARE * 100.0);
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cpu = match (cpu0, cpu1) {
        // /proc counts in USER_HZ, 100 a second on Linux.
        (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / 100.0 / wall.as_secs_f64() * 100.0),
        _ => "unavailable".to_owned(),
    };
    println!(
        "| {instances} | {interval} min | {cpu} | {} | {} | {} | {} | {} | {} | {:.1} MB |",
        figures.due,
        figures.done,
        figures.late,
        seconds_of(figures.lag_p50),
        seconds_of(figures.lag_p99),
        mb(rss),
        bytes as f64 / 1e6
    );
    Ok(())
}

/// For each hot-token count, hub calls spread over that many instances; prints a
/// row each.
async fn hub_curves(http: &reqwest::Client, url: &str, hub_auth: &[String], options: &ScaleBenchOptions, pid: u32) -> anyhow::Result<()> {
    println!();
    println!(
        "Hub calls: GET /hubs/ecommerce/orders/{{id}}, {} clients, {} s per row, the first K instances' tokens in turn",
        options.clients, options.seconds
    );
    println!();
    println!("| hot tokens | req/s | of the first row | p50 | p99 | server CPU per call | new connections/s | RSS |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut first_rate = None;
    for &k in &options.hot {
        let tokens = &hub_auth[..k];
        // Warm up: every token once (each instance opened), then a moment of load.
        drive(http, url, tokens, options.clients, Duration::from_secs(2), true).await?;
        let (cpu0, opens0) = (cpu_ticks(pid), active_opens());
        let load = drive(http, url, tokens, options.clients, Duration::from_secs(options.seconds), false).await?;
        let (cpu1, opens1) = (cpu_ticks(pid), active_opens());
        let rate = load.calls as f64 / load.took.as_secs_f64();
        let first = *first_rate.get_or_insert(rate);
        let cpu_per_call = match (cpu0, cpu1) {
            (Some(a), Some(b)) if load.calls > 0 => format!("{:.0} µs", (b - a) as f64 * 10_000.0 / load.calls as f64),
            _ => "unavailable".to_owned(),
        };
        let opens = match (opens0, opens1) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / load.took.as_secs_f64()),
            _ => "unavailable".to_owned(),
        };
        println!(
            "| {k} | {rate:.0} | {:.0}% | {} | {} | {cpu_per_call} | {opens} | {} |",
            100.0 * rate / first,
            crate::bench::ms(load.p50),
            crate::bench::ms(load.p99),
            mb(rss_kib(pid))
        );
    }
    Ok(())
}

struct Load {
    calls: usize,
    took: Duration,
    p50: Duration,
    p99: Duration,
}

/// `clients` loops calling `url` for `length`, each call with the next of
/// `tokens` (Authorization values) in turn; with `every_token_first`, the tokens
/// are all used once before the clock starts. Every answer must be 200.
async fn drive(
    http: &reqwest::Client,
    url: &str,
    tokens: &[String],
    clients: usize,
    length: Duration,
    every_token_first: bool,
) -> anyhow::Result<Load> {
    let tokens = std::sync::Arc::new(tokens.to_vec());
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let call = |http: reqwest::Client, url: String, authorization: String| async move {
        let t = Instant::now();
        let answer = http.get(&url).header("Authorization", authorization).send().await?;
        let status = answer.status();
        answer.bytes().await?;
        if status != 200 {
            bail!("{url} answered {status}");
        }
        anyhow::Ok(t.elapsed())
    };
    if every_token_first {
        let mut warm = Vec::new();
        for c in 0..clients {
            let (http, url, tokens) = (http.clone(), url.to_owned(), tokens.clone());
            warm.push(tokio::spawn(async move {
                for authorization in tokens.iter().skip(c).step_by(clients) {
                    call(http.clone(), url.clone(), authorization.clone()).await?;
                }
                anyhow::Ok(())
            }));
        }
        for w in warm {
            w.await??;
        }
    }
    let started = Instant::now();
    let end = started + length;
    let mut loops = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (http, url, tokens, next) = (http.clone(), url.to_owned(), tokens.clone(), next.clone());
        loops.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while Instant::now() < end {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                took.push(call(http.clone(), url.clone(), tokens[n % tokens.len()].clone()).await?);
            }
            anyhow::Ok(took)
        }));
    }
    let mut took = Vec::new();
    for l in loops {
        took.extend(l.await??);
    }
    let elapsed = started.elapsed();
    took.sort_unstable();
    let at = |q| crate::bench::quantile(&took, q).unwrap_or_default();
    Ok(Load { calls: took.len(), took: elapsed, p50: at(0.5), p99: at(0.99) })
}

/// TCP connections this machine has opened so far (`Tcp: ActiveOpens` of
/// /proc/net/snmp); `None` without /proc.
fn active_opens() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "ActiveOpens")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

fn mb(kib: Option<u64>) -> String {
    kib.map(|kib| format!("{:.1} MB", kib as f64 / 1024.0)).unwrap_or_else(|| "unavailable".into())
}

/// The polls of a measured window `[t0, t1]`, from the schedule read at its start
/// and at its end.
struct Figures {
    /// Turns due by `t1` (at `t0`, the next turn of each instance).
    due: usize,
    /// Polls that ended inside the window.
    done: usize,
    /// Due turns polled more than [`LATE_SHARE`] of an interval after they fell
    /// due, or not polled while already that late at `t1`.
    late: usize,
    /// From due to the poll's end, over the due turns that were polled.
    lag_p50: Option<i64>,
    lag_p99: Option<i64>,
}

impl Figures {
    fn of(before: &[PollTurn], after: &[PollTurn], t0: i64, t1: i64) -> Figures {
        let ended: std::collections::HashMap<i64, i64> =
            after.iter().filter_map(|t| Some((t.instance_id, t.polled_at?))).filter(|(_, at)| *at > t0).collect();
        let mut lags = Vec::new();
        let (mut due, mut late) = (0, 0);
        for turn in before.iter().filter(|t| t.next_due <= t1) {
            due += 1;
            let allowed = (turn.interval_ms as f64 * LATE_SHARE) as i64;
            match ended.get(&turn.instance_id) {
                Some(at) => {
                    let lag = (at - turn.next_due).max(0);
                    lags.push(lag);
                    if lag > allowed {
                        late += 1;
                    }
                }
                None if t1 - turn.next_due > allowed => late += 1,
                None => {}
            }
        }
        lags.sort_unstable();
        let at = |q| crate::bench::quantile(&lags, q);
        Figures { due, done: ended.len(), late, lag_p50: at(0.5), lag_p99: at(0.99) }
    }
}

fn seconds_of(ms: Option<i64>) -> String {
    ms.map(|ms| format!("{:.2} s", ms as f64 / 1000.0)).unwrap_or_else(|| "-".into())
}

/// User and system CPU time of a process so far, in USER_HZ ticks (Linux /proc).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the 3rd
    // field, utime the 14th and stime the 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(instance_id: i64, next_due: i64, polled_at: Option<i64>) -> PollTurn {
        PollTurn { instance_id, next_due, interval_ms: 1_000, polled_at }
    }

    #[test]
    fn due_done_and_late_polls_of_a_window() {
        let before = [turn(1, 100, None), turn(2, 500, Some(50)), turn(3, 900, None), turn(4, 5_000, None)];
        // 1 polled 50 ms late, 2 polled 300 ms late, 3 not polled and 150 ms late at
        // the end, 4 not due.
        let after = [turn(1, 1_100, Some(150)), turn(2, 1_500, Some(800)), turn(3, 900, None), turn(4, 5_000, None)];
        let f = Figures::of(&before, &after, 0, 1_050);
        assert_eq!((f.due, f.done, f.late), (3, 2, 2));
        assert_eq!((f.lag_p50, f.lag_p99), (Some(300), Some(300)));
    }
}
