//! `switchyard bench-events`: vendor webhook calls in, signed deliveries out.
//!
//! The simulator (`switchyard sandbox`) and Switchyard (`serve`, SQLite or the
//! PostgreSQL database given) run in
//! their own processes. This process plays the vendor and the receiver: it makes a
//! token-mode BigCommerce instance with webhook events, reads the hook Switchyard
//! registered at the simulator (its address and secret header), then calls it at
//! a fixed rate with BigCommerce's payload for the store's orders. Every call is
//! stored, enriched through the hub (a GET of the order at the simulator), signed
//! and POSTed to a receiver here. The latency of an event runs from the start of
//! its vendor call to its arrival at the receiver (the first successful one).
//!
//! Two runs: a healthy receiver, and one that answers 500 to a share of calls
//! (those events arrive on a retry, after the server's retry delay).
//!
//! With `--nodes N` there are N `serve` processes on the one database (the first
//! makes the installation, the others join it), and the vendor calls go to them
//! in turn: a webhook is stored by the node it reached and delivered by whichever
//! node claims it, so the figures include the nodes' coordination.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::bench::{ms, rss_kib, start_another_node, start_sandbox, start_server_with, text};

pub struct EventBenchOptions {
    /// Vendor calls per second.
    pub rate: u32,
    /// Seconds of calls per run.
    pub seconds: u32,
    /// Share (0..1) of deliveries the failing receiver answers with 500.
    pub fail_share: f64,
    /// A PostgreSQL database to run Switchyard on (`None`: a new SQLite file).
    pub database: Option<String>,
    /// `serve` processes on that database, taking the vendor calls in turn.
    pub nodes: usize,
}

/// The receiver: when each event first arrived, and how many calls it answered.
#[derive(Clone)]
struct Receiver {
    arrived: Arc<Mutex<HashMap<String, Instant>>>,
    fail_share: Arc<Mutex<f64>>,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

async fn receive(State(r): State<Receiver>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    r.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let share = *r.fail_share.lock().unwrap_or_else(|e| e.into_inner());
    if share > 0.0 && rand::random::<f64>() < share {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if let Some(id) = v["message"]["eventId"].as_str() {
        r.arrived.lock().unwrap_or_else(|e| e.into_inner()).entry(id.to_owned()).or_insert(at);
    }
    StatusCode::OK
}

struct Run {
    sent: usize,
    delivered: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// p99 of the vendor calls' own answers (the event stored durably).
    intake_p99: Duration,
    receiver_calls: u64,
}

pub async fn run(options: EventBenchOptions) -> anyhow::Result<()> {
    if options.rate == 0 || options.seconds == 0 || options.nodes == 0 || !(0.0..1.0).contains(&options.fail_share) {
        bail!("--rate, --seconds and --nodes must be positive and --fail-share from 0 to below 1");
    }
    let exe = std::env::current_exe().context("finding the switchyard binary")?;
    let dir = tempfile::tempdir().context("a scratch directory")?;
    let (sandbox, credentials) = start_sandbox(&exe)?;
    let bc = &credentials["bigcommerce"];
    let store_url = text(bc, "tokenStoreUrl")?;
    let api_token = text(bc, "apiToken")?;
    // A short retry base (attempt x after about 0.01·4^x s), so the failing run
    // measures the pipeline rather than the production schedule's waits.
    let serve_args = ["--event-retry-base", "0.01", "--event-delivery-concurrency", "128"];
    let (server, api, authorization) = start_server_with(&exe, dir.path(), options.database.as_deref(), &serve_args)?;
    let mut nodes = vec![(server, api.clone())];
    for _ in 1..options.nodes {
        nodes.push(start_another_node(&exe, dir.path(), options.database.as_deref(), &serve_args)?);
    }

    let receiver = Receiver {
        arrived: Arc::default(),
        fail_share: Arc::new(Mutex::new(0.0)),
        calls: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let created = http
        .post(format!("{api}/instances"))
        .header("Authorization", &authorization)
        .json(&json!({"element": {"key": "bigcommerce"}, "name": "bench-events", "configuration": {
            "authentication.type": "custom", "oauth.api.key": "bench", "oauth.user.token": api_token,
            "store.url": store_url, "event.notification.enabled": true, "event.vendor.type": "webhook",
            "event.objects": "orders", "event.notification.callback.url": callback,
            "event.notification.signature.key": "bench-key"}}))
        .send()
        .await?;
    if !created.status().is_success() {
        bail!("creating the instance: {} {}", created.status(), created.text().await?);
    }
    let hooks: Value = http
        .get(format!("{}/hooks", store_url.replace("/v2", "/v3")))
        .header("X-Auth-Token", &api_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let hook = &hooks["data"][0];
    // The hook names the first node; the same path on every node takes the call.
    let destination = text(hook, "destination")?;
    let first_origin = origin(&api);
    let destinations: Vec<String> = nodes
        .iter()
        .map(|(_, node_api)| destination.replacen(first_origin, origin(node_api), 1))
        .collect();
    let (header, secret) = hook["headers"]
        .as_object()
        .and_then(|h| h.iter().next())
        .and_then(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .context("the registered hook carries no header")?;
    let orders: Value =
        http.get(format!("{store_url}/orders?limit=50")).header("X-Auth-Token", &api_token).send().await?.json().await?;
    let ids: Vec<i64> = orders.as_array().context("no orders")?.iter().filter_map(|o| o["id"].as_i64()).collect();
    if ids.is_empty() {
        bail!("the simulator has no orders");
    }
    let vendor = Vendor { http: http.clone(), destinations, header, secret, ids, epoch: chrono_now(), changes: Default::default() };

    let storage = match options.database {
        Some(_) => "PostgreSQL",
        None => "SQLite, group-committed with synchronous=FULL",
    };
    let nodes_text = match options.nodes {
        1 => "one node".to_owned(),
        n => format!("{n} nodes taking the calls in turn"),
    };
    println!("switchyard bench-events: {} vendor calls/s for {} s per run; {storage}; {nodes_text}", options.rate, options.seconds);
    println!();
    println!("| receiver | vendor calls | delivered | events/s | p50 | p99 | max | vendor call p99 | receiver calls |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Warm-up: connections, caches, the first commits.
    vendor.drive(&receiver, options.rate, 1).await?;
    for (name, share) in [("healthy".to_owned(), 0.0), (format!("failing {:.0}%", options.fail_share * 100.0), options.fail_share)] {
        *receiver.fail_share.lock().unwrap_or_else(|e| e.into_inner()) = share;
        let r = vendor.drive(&receiver, options.rate, options.seconds).await?;
        println!(
            "| {name} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            r.sent,
            r.delivered,
            r.per_second,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            ms(r.intake_p99),
            r.receiver_calls
        );
    }
    println!();
    for (n, (server, _)) in nodes.iter().enumerate() {
        match rss_kib(server.id()) {
            Some(kib) => println!("Switchyard node {} resident memory after the runs: {:.1} MB", n + 1, kib as f64 / 1024.0),
            None => println!("Switchyard node {} resident memory: unavailable (no /proc here)", n + 1),
        }
    }
    drop(nodes);
    drop(sandbox);
    Ok(())
}

/// Plays BigCommerce: calls the registered hook.
struct Vendor {
    http: reqwest::Client,
    /// The hook's URL on each node, called in turn.
    destinations: Vec<String>,
    header: String,
    secret: String,
    ids: Vec<i64>,
    /// `created_at` of the first change (epoch seconds).
    epoch: u64,
    /// Changes sent so far, over every run.
    changes: std::sync::atomic::AtomicU64,
}

impl Vendor {
    /// `rate` calls a second for `seconds`, each in its own task (an open loop: a
    /// slow server does not slow the vendor down), then waits for the deliveries.
    async fn drive(&self, receiver: &Receiver, rate: u32, seconds: u32) -> anyhow::Result<Run> {
        receiver.arrived.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let calls_before = receiver.calls.load(std::sync::atomic::Ordering::Relaxed);
        let total = (rate * seconds) as usize;
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut calls = Vec::with_capacity(total);
        for n in 0..total {
            tick.tick().await;
            // Every call is another change: the records in turn, each changing at most
            // once a vendor second (Switchyard takes two calls with the same scope,
            // record, created_at and store for one call sent twice, and stores one event).
            let change = self.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let created_at = self.epoch + change / self.ids.len() as u64;
            let body = json!({"created_at": created_at, "store_id": "1", "producer": "stores/abc123",
                "scope": "store/order/updated", "hash": format!("{n:040x}"),
                "data": {"type": "order", "id": self.ids[change as usize % self.ids.len()]}});
            let request = self.http.post(&self.destinations[n % self.destinations.len()]).header(&self.header, &self.secret).json(&body);
            calls.push(tokio::spawn(async move {
                let at = Instant::now();
                let answer = request.send().await?;
                if !answer.status().is_success() {
                    bail!("the webhook call answered {}", answer.status());
                }
                let v: Value = answer.json().await?;
                Ok((v["eventId"].as_str().context("no eventId")?.to_owned(), at, at.elapsed()))
            }));
        }
        let mut sent: HashMap<String, Instant> = HashMap::with_capacity(total);
        let mut answered = Vec::with_capacity(total);
        for call in calls {
            let (id, at, took) = call.await??;
            sent.insert(id, at);
            answered.push(took);
        }
        answered.sort_unstable();
        // Every stored event must arrive; retries take time (a 20 % failure share
        // fails an event 7 times in a row once in 78,000, and the 8th attempt
        // comes about 0.01·4^7 s = 164 s after the first).
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let arrived = receiver.arrived.lock().unwrap_or_else(|e| e.into_inner()).len();
            if arrived >= sent.len() {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {arrived} of {} events arrived in 240 s", sent.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let arrived = receiver.arrived.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut took: Vec<Duration> =
            sent.iter().filter_map(|(id, at)| arrived.get(id).map(|got| got.saturating_duration_since(*at))).collect();
        took.sort_unstable();
        let last = arrived.values().max().copied().unwrap_or(started);
        let at = |q| crate::bench::quantile(&took, q).unwrap_or_default();
        Ok(Run {
            sent: sent.len(),
            delivered: took.len(),
            per_second: took.len() as f64 / last.duration_since(started).as_secs_f64(),
            p50: at(0.50),
            p99: at(0.99),
            intake_p99: crate::bench::quantile(&answered, 0.99).unwrap_or_default(),
            max: *took.last().unwrap_or(&Duration::ZERO),
            receiver_calls: receiver.calls.load(std::sync::atomic::Ordering::Relaxed) - calls_before,
        })
    }
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// `scheme://host:port` of a URL (all of it when it has no path).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find('/').map_or(url, |i| &url[..after_scheme + i])
}
