//! Several `switchyard serve` processes on one database: a disable, delete or
//! secret reset made through one node (or the CLI) reaches every node's caches —
//! at once on PostgreSQL (notifications), within a second on one SQLite file (the
//! change log) — and the master key is rotated across PostgreSQL nodes holding
//! separate key files.
//!
//! The nodes remember callers and instances for 60 s (`--cache-ttl`), so only the
//! changes they hear of can bring a change within the deadlines here (2 s on
//! PostgreSQL, 3 s on SQLite). The latencies observed are printed (the ≤ 100 ms
//! figure is a benchmark's, not a test's). PostgreSQL is `SWITCHYARD_TEST_POSTGRES`
//! (default the CI machine's); each test creates its own database and drops it
//! after. It fails, never skips, without a server.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

mod common;

use common::{PgDatabase, Sandbox, Serve, BIN};

/// How soon another PostgreSQL node's change must be seen.
const DEADLINE: Duration = Duration::from_secs(2);
/// How soon another SQLite process's change must be seen: the change log is read
/// every second.
const SQLITE_DEADLINE: Duration = Duration::from_secs(3);

/// `switchyard ARGS` in `dir` on the database: standard output as JSON, or a panic
/// with standard error.
fn cli(dir: &Path, db: &str, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("SWITCHYARD_DATABASE_URL", db)
        .env_remove("SWITCHYARD_MASTER_KEY")
        .env_remove("SWITCHYARD_MASTER_KEY_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "switchyard {args:?} failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{args:?} printed JSON ({e}): {stdout}"))
}

/// Calls `status_of` until it answers `want`; panics after `deadline`. Answers
/// how long it took.
async fn within_deadline<F, Fut>(deadline: Duration, what: &str, want: u16, mut status_of: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let started = Instant::now();
    loop {
        let status = status_of().await;
        if status == want {
            let took = started.elapsed();
            println!("{what}: {want} after {} ms", took.as_millis());
            return took;
        }
        assert!(
            started.elapsed() < deadline,
            "{what}: still {status} after {deadline:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Nodes {
    http: reqwest::Client,
}

impl Nodes {
    async fn status(&self, url: String, auth: &str) -> u16 {
        self.http
            .get(url)
            .header("Authorization", auth)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn orders(&self, api: &str, hub_auth: &str) -> u16 {
        self.status(format!("{api}/hubs/ecommerce/orders?pageSize=1"), hub_auth)
            .await
    }

    /// A BigCommerce instance made through `api`: (id, its hub Authorization), or
    /// the whole refusal.
    async fn create(
        &self,
        api: &str,
        auth: &str,
        bc: &Value,
        name: &str,
    ) -> Result<(i64, String), (u16, Value)> {
        let r = self
            .http
            .post(format!("{api}/instances"))
            .header("Authorization", auth)
            .json(&json!({"element": {"key": "bigcommerce"}, "name": name, "configuration": {
                "username": bc["username"], "password": bc["apiToken"], "store.url": bc["storeUrl"]}}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if status != 200 {
            return Err((status, body));
        }
        Ok((
            body["id"].as_i64().unwrap(),
            format!("{auth}, Element {}", body["token"].as_str().unwrap()),
        ))
    }
}

/// `User X, Organization Y` → (X, Y).
fn secrets_of(auth: &str) -> (String, String) {
    let (user, org) = auth.split_once(", ").unwrap();
    (
        user.trim_start_matches("User ").to_owned(),
        org.trim_start_matches("Organization ").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn disables_and_secret_resets_reach_every_node_within_the_deadline() {
    let db = PgDatabase::create("nodes_cache").await;
    let dir = tempfile::tempdir().unwrap();
    changes_reach_every_node(dir.path(), &db.url, DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disables_and_secret_resets_reach_every_process_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    changes_reach_every_node(dir.path(), &url, SQLITE_DEADLINE).await;
}

/// Two nodes on the database `db` (started in `dir`): changes made through one or
/// the CLI reach the other's caches within `deadline`.
async fn changes_reach_every_node(dir: &Path, db: &str, deadline: Duration) {
    let sandbox = Sandbox::start(&[]);
    let bc = sandbox.credentials["bigcommerce"].clone();
    let args = [
        "--database",
        db,
        "--outbound-allow",
        "127.0.0.0/8",
        "--cache-ttl",
        "60",
    ];
    let a = Serve::start(dir, &args, &[]);
    let auth = a
        .stdout
        .iter()
        .find_map(|v| v["authorization"].as_str())
        .expect("the first organization is printed")
        .to_owned();
    let b = Serve::start(dir, &args, &[]);
    let nodes = Nodes {
        http: reqwest::Client::new(),
    };

    // Disable through A; B, which has the instance open in its cache, refuses it.
    let (id, hub_auth) = nodes.create(&a.base, &auth, &bc, "shared").await.unwrap();
    assert_eq!(nodes.orders(&b.base, &hub_auth).await, 200);
    assert_eq!(nodes.orders(&a.base, &hub_auth).await, 200);
    let r = nodes
        .http
        .delete(format!("{}/instances/{id}/enabled", a.base))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    within_deadline(deadline, "hub call through B after a disable through A", 403, || {
        nodes.orders(&b.base, &hub_auth)
    })
    .await;
    let r = nodes
        .http
        .put(format!("{}/instances/{id}/enabled", b.base))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    within_deadline(deadline, "hub call through A after an enable through B", 200, || {
        nodes.orders(&a.base, &hub_auth)
    })
    .await;

    // The organization's secret reset by the CLI while both nodes remember the caller.
    let instances = |api: String, auth: String| {
        let nodes = &nodes;
        async move { nodes.status(format!("{api}/instances"), &auth).await }
    };
    for api in [&a.base, &b.base] {
        assert_eq!(instances(api.clone(), auth.clone()).await, 200);
    }
    let orgs = cli(dir, db, &["orgs", "list", "--json"]);
    let org_id = orgs[0]["id"].as_i64().unwrap().to_string();
    let reset = cli(
        dir,
        db,
        &["orgs", "reset-secret", &org_id, "--json"],
    );
    let new_org = reset["organization"]["secret"].as_str().unwrap().to_owned();
    for (name, api) in [("A", &a.base), ("B", &b.base)] {
        within_deadline(
            deadline,
            &format!("the old organization secret through {name} after orgs reset-secret"),
            401,
            || instances(api.clone(), auth.clone()),
        )
        .await;
    }
    let (user, _) = secrets_of(&auth);
    let auth = format!("User {user}, Organization {new_org}");
    for api in [&a.base, &b.base] {
        assert_eq!(
            instances(api.clone(), auth.clone()).await,
            200,
            "the new organization secret works"
        );
    }

    // The same for the user's secret.
    let users = cli(dir, db, &["users", "list", "--json"]);
    let user_id = users[0]["id"].as_i64().unwrap().to_string();
    let reset = cli(
        dir,
        db,
        &["users", "reset-secret", &user_id, "--json"],
    );
    let new_user = reset["user"]["secret"].as_str().unwrap().to_owned();
    for (name, api) in [("A", &a.base), ("B", &b.base)] {
        within_deadline(
            deadline,
            &format!("the old user secret through {name} after users reset-secret"),
            401,
            || instances(api.clone(), auth.clone()),
        )
        .await;
    }
    let auth = format!("User {new_user}, Organization {new_org}");
    for api in [&a.base, &b.base] {
        assert_eq!(
            instances(api.clone(), auth.clone()).await,
            200,
            "the new user secret works"
        );
    }

    // A delete through B: A forgets the instance too.
    let hub_auth = format!(
        "{auth}, Element {}",
        hub_auth.rsplit("Element ").next().unwrap()
    );
    assert_eq!(nodes.orders(&a.base, &hub_auth).await, 200);
    let r = nodes
        .http
        .delete(format!("{}/instances/{id}", b.base))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    within_deadline(deadline, "hub call through A after a delete through B", 401, || {
        nodes.orders(&a.base, &hub_auth)
    })
    .await;
    a.stop();
    b.stop();
}

/// Key ids of the sealed configuration values in the database.
async fn sealed_key_ids(url: &str) -> Vec<i64> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT DISTINCT key_id FROM instance_configuration WHERE secret IS NOT NULL ORDER BY key_id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_master_key_is_rotated_across_nodes_with_their_own_key_files() {
    let db = PgDatabase::create("nodes_cache").await;
    let sandbox = Sandbox::start(&[]);
    let bc = sandbox.credentials["bigcommerce"].clone();
    let args = [
        "--database",
        db.url.as_str(),
        "--outbound-allow",
        "127.0.0.0/8",
        "--cache-ttl",
        "60",
    ];
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = Serve::start(dir_a.path(), &args, &[]);
    let auth = a
        .stdout
        .iter()
        .find_map(|v| v["authorization"].as_str())
        .expect("the first organization is printed")
        .to_owned();
    // Each node its own copy of the key file (copies keep the owner-only mode).
    let key_a = dir_a.path().join("switchyard.key");
    for dir in [&dir_b, &dir_c] {
        std::fs::copy(&key_a, dir.path().join("switchyard.key")).unwrap();
    }
    let b = Serve::start(dir_b.path(), &args, &[]);
    let c = Serve::start(dir_c.path(), &args, &[]);
    let nodes = Nodes {
        http: reqwest::Client::new(),
    };
    let (_, first) = nodes.create(&a.base, &auth, &bc, "before").await.unwrap();
    for node in [&a, &b, &c] {
        assert_eq!(nodes.orders(&node.base, &first).await, 200);
    }
    let old_key = sealed_key_ids(&db.url).await;
    assert_eq!(old_key.len(), 1);

    // Step one: the new key on A and B (C is forgotten), current nowhere yet.
    let added = cli(dir_a.path(), &db.url, &["rotate-key", "--add"]);
    let new_key = added["addedKeyIds"][0].as_i64().unwrap();
    assert_eq!(
        added["currentKeyId"].as_i64(),
        Some(old_key[0]),
        "--add does not make the key current: {added}"
    );
    let copied = cli(
        dir_b.path(),
        &db.url,
        &["rotate-key", "--add", "--key-from", key_a.to_str().unwrap()],
    );
    assert_eq!(copied["addedKeyIds"], json!([new_key]), "{copied}");
    assert_eq!(
        sealed_key_ids(&db.url).await,
        old_key,
        "nothing re-encrypted by --add"
    );

    // Step two, on A: current in the database, everything re-encrypted, nodes told.
    let activated = cli(dir_a.path(), &db.url, &["rotate-key", "--activate"]);
    assert_eq!(
        activated["currentKeyId"].as_i64(),
        Some(new_key),
        "{activated}"
    );
    assert_eq!(
        activated["previousKeyId"].as_i64(),
        Some(old_key[0]),
        "{activated}"
    );
    assert!(
        activated["reencrypted"].as_u64().unwrap() >= 1,
        "{activated}"
    );
    assert_eq!(sealed_key_ids(&db.url).await, vec![new_key]);

    // A and B open the re-encrypted secrets and seal new ones under the new key.
    for node in [&a, &b] {
        within_deadline(
            DEADLINE,
            "a re-encrypted instance through a node with the new key",
            200,
            || nodes.orders(&node.base, &first),
        )
        .await;
    }
    let (_, second) = nodes
        .create(&b.base, &auth, &bc, "after, through B")
        .await
        .unwrap();
    assert_eq!(
        sealed_key_ids(&db.url).await,
        vec![new_key],
        "B sealed under the database's current key"
    );
    assert_eq!(nodes.orders(&a.base, &second).await, 200);

    // C lacks the new key: a clear refusal, in the error shape, and nothing written.
    let r = nodes
        .http
        .get(format!("{}/hubs/ecommerce/orders?pageSize=1", c.base))
        .header("Authorization", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("lacks key id {new_key}")),
        "{body}"
    );
    let (status, body) = nodes
        .create(&c.base, &auth, &bc, "through C")
        .await
        .unwrap_err();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&new_key.to_string()),
        "{body}"
    );
    assert_eq!(
        sealed_key_ids(&db.url).await,
        vec![new_key],
        "C sealed nothing under the old key"
    );
    assert_eq!(
        nodes.orders(&a.base, &second).await,
        200,
        "nothing corrupted"
    );

    // Once C has the key, it works.
    cli(
        dir_c.path(),
        &db.url,
        &["rotate-key", "--add", "--key-from", key_a.to_str().unwrap()],
    );
    assert_eq!(nodes.orders(&c.base, &second).await, 200);
    assert_eq!(nodes.orders(&c.base, &first).await, 200);
    let (_, third) = nodes
        .create(&c.base, &auth, &bc, "through C, with the key")
        .await
        .unwrap();
    assert_eq!(nodes.orders(&a.base, &third).await, 200);
    assert_eq!(sealed_key_ids(&db.url).await, vec![new_key]);

    // No key material in any log.
    let key_file: Value = serde_json::from_slice(&std::fs::read(&key_a).unwrap()).unwrap();
    let keys: Vec<String> = key_file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect();
    for node in [a, b, c] {
        let log = node.stop();
        assert!(
            keys.iter().all(|k| !log.contains(k.as_str())),
            "a master key reached a log"
        );
    }
}
