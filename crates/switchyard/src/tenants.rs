//! Organizations and users. Their secrets are 256 random bits, shown once on
//! standard output and stored only as hashes (see `caller::new_secret`).

use anyhow::{bail, Context};
use serde_json::{json, Value};
use switchyard_store::{Organization, StoreError, User};

use crate::database;
use crate::DatabaseOptions;

pub use switchyard_server::caller::{hash_secret, new_secret};

fn authorization(user_secret: &str, org_secret: &str) -> String {
    format!("User {user_secret}, Organization {org_secret}")
}

fn user_json(user: &User, secret: &str) -> Value {
    json!({"id": user.id, "emailAddress": user.email, "secret": secret})
}

fn organization_json(org: &Organization, secret: &str) -> Value {
    json!({"id": org.id, "name": org.name, "secret": secret})
}

/// Prints what a command created: JSON, or the same facts as lines for a person.
fn print(value: &Value, json: bool) {
    if json {
        println!("{value}");
        return;
    }
    if let Some(org) = value.get("organization") {
        println!("organization {} ({}) secret: {}", org["id"], org["name"].as_str().unwrap_or(""), org["secret"].as_str().unwrap_or(""));
    }
    if let Some(user) = value.get("user") {
        println!("user {} ({}) secret: {}", user["id"], user["emailAddress"].as_str().unwrap_or(""), user["secret"].as_str().unwrap_or(""));
    }
    if let Some(auth) = value.get("authorization").and_then(Value::as_str) {
        println!("Authorization: {auth}");
    }
    println!("These secrets are shown once; only their hashes are stored.");
}

/// Creates an organization with its first user and returns the JSON printed for it.
pub async fn new_organization(
    store: &switchyard_store::Store,
    name: &str,
    email: &str,
) -> anyhow::Result<Value> {
    let (org_secret, user_secret) = (new_secret(), new_secret());
    let (org, user) = store
        .create_organization(name, &hash_secret(&org_secret), email, &hash_secret(&user_secret))
        .await?;
    Ok(json!({
        "organization": organization_json(&org, &org_secret),
        "user": user_json(&user, &user_secret),
        "authorization": authorization(&user_secret, &org_secret),
    }))
}

/// `switchyard init`: the first organization of a new database, once.
pub async fn init(db: &DatabaseOptions, name: &str, email: &str, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await?;
    if opened.store.organization_count().await? > 0 {
        bail!(
            "the database {} already has organizations; use `switchyard orgs create NAME` \
             or `switchyard orgs reset-secret ID`",
            database::shown_url(&db.database_url)
        );
    }
    let created = new_organization(&opened.store, name, email).await?;
    opened.store.close().await;
    print(&created, json);
    Ok(())
}

pub async fn create_organization(db: &DatabaseOptions, name: &str, email: &str, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await?;
    let created = new_organization(&opened.store, name, email).await?;
    opened.store.close().await;
    print(&created, json);
    Ok(())
}

pub async fn create_user(db: &DatabaseOptions, org: i64, email: &str, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await?;
    let secret = new_secret();
    let user = match opened.store.create_user(org, email, &hash_secret(&secret)).await {
        Ok(user) => user,
        Err(StoreError::Conflict(message)) => bail!(message),
        Err(e) => return Err(e.into()),
    };
    opened.store.close().await;
    print(
        &json!({"user": user_json(&user, &secret), "authorization": format!("User {secret}, Organization <organization secret>")}),
        json,
    );
    Ok(())
}

pub async fn reset_organization_secret(db: &DatabaseOptions, id: i64, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await?;
    let secret = new_secret();
    let found = opened.store.reset_organization_secret(id, &hash_secret(&secret)).await?;
    opened.store.close().await;
    if !found {
        bail!("no organization {id}");
    }
    print(&json!({"organization": {"id": id, "secret": secret}}), json);
    Ok(())
}

pub async fn reset_user_secret(db: &DatabaseOptions, id: i64, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await.context("opening the database")?;
    let secret = new_secret();
    let found = opened.store.reset_user_secret(id, &hash_secret(&secret)).await?;
    opened.store.close().await;
    if !found {
        bail!("no user {id}");
    }
    print(&json!({"user": {"id": id, "secret": secret}}), json);
    Ok(())
}

/// `switchyard orgs list`: every organization (no secrets: only their hashes are kept).
pub async fn list_organizations(db: &DatabaseOptions, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await?;
    let orgs = opened.store.organizations().await?;
    opened.store.close().await;
    let rows: Vec<Value> =
        orgs.iter().map(|o| json!({"id": o.id, "name": o.name, "createdDate": o.created_at})).collect();
    print_list(&rows, json, |r| format!("{}\t{}\t{}", r["id"], text(&r["name"]), text(&r["createdDate"])), "id\tname\tcreated");
    Ok(())
}

/// `switchyard users list [--org ID]`: users with their organization (no secrets).
pub async fn list_users(db: &DatabaseOptions, org: Option<i64>, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await?;
    let users = opened.store.users(org).await?;
    opened.store.close().await;
    let rows: Vec<Value> = users
        .iter()
        .map(|u| json!({"id": u.id, "organizationId": u.organization_id, "emailAddress": u.email, "createdDate": u.created_at}))
        .collect();
    print_list(
        &rows,
        json,
        |r| format!("{}\t{}\t{}\t{}", r["id"], r["organizationId"], text(&r["emailAddress"]), text(&r["createdDate"])),
        "id\torganization\temail\tcreated",
    );
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A JSON array, or a tab-separated table with a header line for a person.
fn print_list(rows: &[Value], json: bool, line: impl Fn(&Value) -> String, header: &str) {
    if json {
        println!("{}", Value::Array(rows.to_vec()));
        return;
    }
    println!("{header}");
    for row in rows {
        println!("{}", line(row));
    }
}
