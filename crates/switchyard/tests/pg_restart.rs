//! PostgreSQL restarted under event intake: the test runs its own PostgreSQL
//! server (`initdb` and `pg_ctl` from `/usr/lib/postgresql/*/bin`, as the
//! `postgres` user, in a temporary directory, on a free port), points `serve` at
//! it, sends vendor webhook calls without pause and restarts the server in the
//! middle. The node must not crash, must answer `/readyz` 200 again once the
//! database is back, and every call it acknowledged (2xx) must reach the callback.
//! Calls refused while the database was away are the vendor's to send again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use serde_json::{json, Value};

mod common;

use common::{create_instance, free_port, until, Sandbox, Serve};

/// Where a PostgreSQL server of this test's own lives and listens.
#[derive(Clone)]
struct Cluster {
    bin: PathBuf,
    /// Owned by `postgres`: the data directory, the log and the socket.
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one PostgreSQL program as the `postgres` user (the server refuses root).
    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {program} as postgres: {e}"))
    }

    fn must(&self, program: &str, args: &[&str]) {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl start|restart` (fast shutdown), waiting until connections are accepted.
    fn pg_ctl(&self, action: &str) {
        let options =
            format!("-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}", self.port, path(&self.dir));
        let (data, log) = (self.data(), self.dir.join("log"));
        self.must("pg_ctl", &["-D", path(&data), "-l", path(&log), "-o", &options, "-m", "fast", "-w", action]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// A new cluster in a temporary directory, started; stopped (immediately) and
/// removed when dropped.
struct OwnPostgres {
    cluster: Cluster,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's programs in /usr/lib/postgresql/*/bin")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|b| b.join("pg_ctl").is_file())
            .max()
            .expect("a PostgreSQL version with pg_ctl under /usr/lib/postgresql");
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chown").args(["postgres:postgres"]).arg(dir.path()).status().unwrap();
        assert!(status.success(), "chown the PostgreSQL directory to postgres");
        let cluster = Cluster { bin, dir: dir.path().to_owned(), port: free_port() };
        cluster.must("initdb", &["-D", path(&cluster.data()), "-A", "trust", "-U", "postgres", "--no-sync"]);
        cluster.pg_ctl("start");
        OwnPostgres { cluster, _dir: dir }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.cluster.run("pg_ctl", &["-D", path(&self.cluster.data()), "-m", "immediate", "-w", "stop"]);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Event ids the callback received.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<HashSet<String>>>);

async fn receive(State(r): State<Receiver>, body: Bytes) -> &'static str {
    let v: Value = serde_json::from_slice(&body).unwrap();
    r.0.lock().unwrap().insert(v["message"]["eventId"].as_str().unwrap().to_owned());
    "ok"
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_during_intake_loses_no_acknowledged_event() {
    let pg = OwnPostgres::start();
    let sandbox = Sandbox::start(&[]);
    let bc = sandbox.credentials["bigcommerce"].clone();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let url = pg.cluster.url();
    let args = ["--database", url.as_str(), "--outbound-allow", "127.0.0.0/8", "--event-retry-base", "0.05"];
    let server = Serve::start(dir.path(), &args, &[]);
    let auth = server.stdout.iter().find_map(|v| v["authorization"].as_str()).unwrap().to_owned();
    let api = server.base.clone();
    let root = api.trim_end_matches("/elements/api-v2").to_owned();
    let store_url = bc["tokenStoreUrl"].as_str().unwrap();
    let api_token = bc["apiToken"].as_str().unwrap();
    let created: Value = create_instance(&http, &api, &auth, &json!({"element": {"key": "bigcommerce"}, "name": "hooked", "configuration": {
            "authentication.type": "custom", "oauth.api.key": "k", "oauth.user.token": api_token,
            "store.url": store_url, "event.notification.enabled": true, "event.vendor.type": "webhook",
            "event.objects": "orders", "event.notification.callback.url": callback,
            "event.notification.signature.key": "sig-key"}})).await;
    assert!(created["id"].is_i64(), "{created}");
    let hooks: Value =
        http.get(format!("{}/hooks", store_url.replace("/v2", "/v3"))).header("X-Auth-Token", api_token).send().await.unwrap().json().await.unwrap();
    let hook = &hooks["data"][0];
    let destination = hook["destination"].as_str().unwrap_or_else(|| panic!("{hooks}")).to_owned();
    let (header, secret) = hook["headers"].as_object().unwrap().iter().next().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).unwrap();
    let orders: Value = http.get(format!("{store_url}/orders?limit=1")).header("X-Auth-Token", api_token).send().await.unwrap().json().await.unwrap();
    let order_id = orders[0]["id"].as_i64().unwrap();

    // Four vendors calling without pause, each call another change.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let mut vendors = Vec::new();
    for _ in 0..4 {
        let (http, destination, header, secret) = (http.clone(), destination.clone(), header.clone(), secret.clone());
        let (acknowledged, refused, stop, next) = (acknowledged.clone(), refused.clone(), stop.clone(), next.clone());
        vendors.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let body = json!({"created_at": 1_700_000_000 + n, "store_id": "1", "producer": "stores/abc123",
                    "scope": "store/order/updated", "hash": format!("{n:040x}"), "data": {"type": "order", "id": order_id}});
                match http.post(&destination).header(&header, &secret).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap();
                        acknowledged.lock().unwrap().push(v["eventId"].as_str().unwrap().to_owned());
                    }
                    // Refused or cut off: not acknowledged, the vendor would send it again.
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    let acked = || acknowledged.lock().unwrap().len();
    until(Duration::from_secs(60), "200 acknowledged calls before the restart", || acked() >= 200).await;

    let before = acked();
    let cluster = pg.cluster.clone();
    tokio::task::spawn_blocking(move || cluster.pg_ctl("restart")).await.unwrap();
    println!("restarted PostgreSQL after {before} acknowledged calls");

    // Back to ready, and taking calls again.
    let ready = || async { http.get(format!("{root}/readyz")).send().await.is_ok_and(|r| r.status() == 200) };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ready().await {
        assert!(std::time::Instant::now() < deadline, "/readyz is not 200 a minute after PostgreSQL came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_restart = acked();
    until(Duration::from_secs(60), "200 more acknowledged calls after the restart", || acked() >= after_restart + 200).await;
    stop.store(true, Ordering::Relaxed);
    for v in vendors {
        v.await.unwrap();
    }

    let acknowledged: Vec<String> = acknowledged.lock().unwrap().clone();
    until(Duration::from_secs(120), "every acknowledged event at the callback", || {
        let got = receiver.0.lock().unwrap();
        acknowledged.iter().all(|id| got.contains(id))
    })
    .await;
    println!(
        "{} calls acknowledged, {} refused or cut off while PostgreSQL restarted; every acknowledged event delivered",
        acknowledged.len(),
        refused.load(Ordering::Relaxed)
    );
    // The node lived through it: it still stops cleanly on SIGTERM.
    server.stop();
}
