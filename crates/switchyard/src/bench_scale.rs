//! `switchyard bench-scale`: what many polling instances cost while few polls are
//! due.
//!
//! The simulator (`switchyard sandbox`) and Switchyard (`serve`, a new SQLite file
//! or the PostgreSQL database given) run in their own processes. This process
//! creates N BigCommerce instances through the API (`POST /instances`, several at
//! once), each polling the simulator's customers, orders and products every
//! `--interval` minutes with a local receiver as callback, waits until every one
//! is on the polling schedule, lets the start settle, then measures the server
//! over `--seconds`: its CPU time (from /proc, as a share of one core), the polls
//! that fell due and were done, how late they were, its resident memory, and the
//! database's size. The schedule is read from the database by this process, so
//! reading it costs the server nothing.
//!
//! A new instance is first due at a random point of its first interval, so about
//! N / interval polls fall due each second: with 10,000 instances at 15 minutes,
//! 11 a second. The CPU share includes those polls (three hub list calls each).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use switchyard_store::{PollTurn, Store};

use crate::bench::{rss_kib, start_sandbox, start_server_with, text};

pub struct ScaleBenchOptions {
    /// Polling instances to create.
    pub instances: usize,
    /// Their poll interval, minutes.
    pub interval: f64,
    /// Seconds measured.
    pub seconds: u64,
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
    if options.instances == 0 || options.seconds == 0 || options.concurrency == 0 {
        bail!("--instances, --seconds and --concurrency must be at least 1");
    }
    if !options.interval.is_finite() || options.interval <= 0.0 || options.interval > 1440.0 {
        bail!("--interval must be minutes above 0 and at most 1440");
    }
    // Each instance's turn is counted once in the window (its next due time and its
    // last poll), so a window as long as an interval would count polls wrongly.
    if options.seconds as f64 >= options.interval * 60.0 {
        bail!("--seconds must be shorter than the interval ({} minutes = {} s)", options.interval, options.interval * 60.0);
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

    let http = reqwest::Client::builder().pool_max_idle_per_host(options.concurrency).build()?;
    let template = json!({"element": {"key": "bigcommerce"}, "configuration": {
        "username": username, "password": token, "store.url": store_url,
        "event.notification.enabled": true, "event.vendor.type": "polling",
        "event.poller.refresh_interval": options.interval.to_string(),
        "event.notification.callback.url": callback}});
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..options.concurrency {
        let (http, api, authorization, next) = (http.clone(), api.clone(), authorization.clone(), next.clone());
        let template = template.clone();
        let total = options.instances;
        creators.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(());
                }
                let mut body = template.clone();
                body["name"] = Value::String(format!("scale-{n}"));
                let answer = http.post(format!("{api}/instances")).header("Authorization", &authorization).json(&body).send().await?;
                if !answer.status().is_success() {
                    bail!("creating instance {n}: {} {}", answer.status(), answer.text().await?);
                }
            }
        }));
    }
    for creator in creators {
        creator.await??;
    }
    let creating = started.elapsed();

    let store = Store::open(&database_url).await.context("opening the server's database to read its schedule")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let scheduled = store.poll_turns().await?.len();
        if scheduled >= options.instances {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {scheduled} of {} instances were on the polling schedule after 600 s", options.instances);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let scheduling = started.elapsed() - creating;
    tokio::time::sleep(SETTLE).await;

    let pid = server.id();
    let before = store.poll_turns().await?;
    let (t0, cpu0, wall0) = (switchyard_events::now_ms(), cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let (t1, cpu1, wall) = (switchyard_events::now_ms(), cpu_ticks(pid), wall0.elapsed());
    let after = store.poll_turns().await?;
    let bytes = store.database_bytes().await?;
    let rss = rss_kib(pid);
    store.close().await;

    let figures = Figures::of(&before, &after, t0, t1);
    println!(
        "switchyard bench-scale: {} BigCommerce instances polling every {} min ({}), created through the API in {:.1} s ({:.0}/s, {} at once), all scheduled {:.1} s later; measured {} s after {} s to settle",
        options.instances,
        options.interval,
        crate::bench::backend(options.database.as_deref()),
        creating.as_secs_f64(),
        options.instances as f64 / creating.as_secs_f64(),
        options.concurrency,
        scheduling.as_secs_f64(),
        options.seconds,
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
        "| {} | {} min | {cpu} | {} | {} | {} | {} | {} | {} | {:.1} MB |",
        options.instances,
        options.interval,
        figures.due,
        figures.done,
        figures.late,
        seconds(figures.lag_p50),
        seconds(figures.lag_p99),
        rss.map(|kib| format!("{:.1} MB", kib as f64 / 1024.0)).unwrap_or_else(|| "unavailable".into()),
        bytes as f64 / 1e6
    );
    drop(server);
    drop(sandbox);
    Ok(())
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
        let at = |q: f64| (!lags.is_empty()).then(|| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)]);
        Figures { due, done: ended.len(), late, lag_p50: at(0.5), lag_p99: at(0.99) }
    }
}

fn seconds(ms: Option<i64>) -> String {
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
