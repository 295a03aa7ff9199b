//! `switchyard` on PostgreSQL: a first `serve` on a fresh database creates the first
//! organization, an instance answers hub calls through the simulator, a restart on
//! the same database (selected through SWITCHYARD_DATABASE_URL this time) keeps the
//! tenant, the instance and its sealed secrets; the tenant commands and `rotate-key`
//! work on it, and after the rotation the new key alone opens everything.
//!
//! PostgreSQL is the server at `SWITCHYARD_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`, the CI machine's); the test creates its
//! own database there and drops it after. It fails, never skips, without a server.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

mod common;

use common::{Sandbox, Serve, BIN};

fn admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database on the test server, dropped with this value.
struct FreshDatabase {
    name: String,
    /// Its URL with a password the server (trust auth) never asks for: it must
    /// never reach the log.
    url: String,
}

const PASSWORD: &str = "pw-never-logged";

impl FreshDatabase {
    async fn create() -> FreshDatabase {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("this test needs PostgreSQL at {admin} (SWITCHYARD_TEST_POSTGRES names another): {e}")
        });
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("sy_serve_{}_{nanos}", std::process::id());
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        if url.username().is_empty() {
            url.set_username("postgres").unwrap();
        }
        url.set_password(Some(PASSWORD)).unwrap();
        FreshDatabase { name, url: url.to_string() }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.unwrap();
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_and_the_commands_run_on_postgres_and_keep_the_data_across_restarts() {
    let db = FreshDatabase::create().await;
    let sandbox = Sandbox::start(&[]);
    let bc = sandbox.credentials["bigcommerce"].clone();
    let dir = tempfile::tempdir().unwrap();
    let allow = ["--outbound-allow", "127.0.0.0/8"];
    let http = reqwest::Client::new();

    let server = Serve::start(dir.path(), &[&["--database", db.url.as_str()][..], &allow[..]].concat(), &[]);
    let auth = server.stdout.iter().find_map(|v| v["authorization"].as_str()).expect("the first organization is printed").to_owned();
    let api = server.base.clone();
    let created: Value = http
        .post(format!("{api}/instances"))
        .header("Authorization", &auth)
        .json(&serde_json::json!({"element": {"key": "bigcommerce"}, "name": "pg", "tags": ["pg"], "configuration": {
            "username": bc["username"], "password": bc["apiToken"], "store.url": bc["storeUrl"]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap_or_else(|| panic!("instance created: {created}"));
    let hub_auth = format!("{auth}, Element {}", created["token"].as_str().unwrap());
    let orders = |api: String| {
        let (http, hub_auth) = (http.clone(), hub_auth.clone());
        async move {
            let r = http.get(format!("{api}/hubs/ecommerce/orders?pageSize=3")).header("Authorization", hub_auth).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let ids: Vec<i64> = r.json::<Value>().await.unwrap().as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
            ids
        }
    };
    let first = orders(api.clone()).await;
    assert_eq!(first.len(), 3);
    let log = server.stop();
    assert!(!log.contains(PASSWORD), "the database password reached the log");

    // The restart finds the tenant: no new credentials; the instance, its tags and
    // its sealed API token (opened with the key file beside) all still work.
    let env = [("SWITCHYARD_DATABASE_URL", db.url.as_str())];
    let server = Serve::start(dir.path(), &allow, &env);
    assert!(server.stdout.iter().all(|v| v.get("authorization").is_none()), "no second first organization");
    let api = server.base.clone();
    let found: Value = http.get(format!("{api}/instances?tags[]=pg")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(found.as_array().map(|a| a.iter().map(|i| i["id"].as_i64()).collect::<Vec<_>>()), Some(vec![Some(id)]), "{found}");
    assert_eq!(orders(api.clone()).await, first);
    let log = server.stop();
    assert!(!log.contains(PASSWORD), "the database password reached the log of the restart");
    assert!(log.contains("using an existing database"), "the restart says it found the tenant: {log}");
    assert!(log.contains("postgres:***@"), "the log names the database without its password: {log}");
    assert!(!dir.path().join("switchyard.db").exists(), "no SQLite file beside: the data is in PostgreSQL");
    assert!(dir.path().join("switchyard.key").exists(), "the key file is made in the working directory");

    // The tenant commands and key rotation on the same database.
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(args)
            .env("SWITCHYARD_DATABASE_URL", &db.url)
            .env_remove("SWITCHYARD_MASTER_KEY")
            .env_remove("SWITCHYARD_MASTER_KEY_FILE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains(PASSWORD), "the database password reached the log: {stderr}");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let (ok, orgs, err) = cli(&["orgs", "list", "--json"]);
    assert!(ok, "{err}");
    let orgs: Value = serde_json::from_str(&orgs).unwrap();
    let org_id = orgs[0]["id"].as_i64().unwrap().to_string();
    let (ok, _, err) = cli(&["users", "create", "--org", &org_id, "dev@pg.test", "--json"]);
    assert!(ok, "{err}");
    assert!(!cli(&["users", "create", "--org", &org_id, "dev@pg.test", "--json"]).0, "the same email twice is refused");
    assert!(!cli(&["init", "--json"]).0, "init refuses a database that has organizations");
    let (ok, rotated, err) = cli(&["rotate-key"]);
    assert!(ok, "{err}");
    let rotated: Value = serde_json::from_str(&rotated).unwrap();
    // The instance's API token, the organization's secret and its two users' secrets.
    assert_eq!(rotated["reencrypted"].as_u64(), Some(4), "{rotated}");
    let new_id = rotated["currentKeyId"].as_u64().unwrap();
    let key_file: Value = serde_json::from_slice(&std::fs::read(dir.path().join("switchyard.key")).unwrap()).unwrap();
    let new_key = key_file["keys"].as_array().unwrap().iter().find(|k| k["id"].as_u64() == Some(new_id)).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // With the new key alone the server opens the database and the instance's token.
    let env = [("SWITCHYARD_DATABASE_URL", db.url.as_str()), ("SWITCHYARD_MASTER_KEY", new_key.as_str())];
    let server = Serve::start(dir.path(), &allow, &env);
    assert_eq!(orders(server.base.clone()).await, first);
    server.stop();
}
