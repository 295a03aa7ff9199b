//! Organizations and users. Their secrets are 256 random bits, shown on standard
//! output when made, and stored as a lookup hash plus a copy sealed by the vault
//! (the owner reads it back after logging in: `GET /elements/api-v1/ui/getSecrets`).
//! User passwords, for that login, are Argon2id hashes.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use switchyard_engine::secret::NewTenantSecret;
use switchyard_store::{Organization, StoreError, Tenant, User};
use switchyard_vault::Vault;

use crate::database;
use crate::DatabaseOptions;


/// An email as given for a new user: login compares it trimmed and without case,
/// so one with blanks around it could never log in.
fn checked_email(email: &str) -> anyhow::Result<&str> {
    if email.is_empty() || email.trim() != email || email.len() > switchyard_server::session::MAX_EMAIL_BYTES {
        bail!(
            "the email {email:?} must be 1 to {} bytes without spaces around it",
            switchyard_server::session::MAX_EMAIL_BYTES
        );
    }
    Ok(email)
}

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
    println!("Keep these secrets; they are shown here, and later only to their user after a password login.");
}

/// Creates an organization with its first user and returns the JSON printed for it.
pub async fn new_organization(
    store: &switchyard_store::Store,
    vault: &Vault,
    name: &str,
    email: &str,
) -> anyhow::Result<Value> {
    let email = checked_email(email)?;
    let org_secret = NewTenantSecret::generate(vault, Tenant::Organization);
    let user_secret = NewTenantSecret::generate(vault, Tenant::User);
    let (org, user) = store.create_organization(name, org_secret.stored(), email, user_secret.stored()).await?;
    Ok(json!({
        "organization": organization_json(&org, &org_secret.secret),
        "user": user_json(&user, &user_secret.secret),
        "authorization": authorization(&user_secret.secret, &org_secret.secret),
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
    let created = new_organization(&opened.store, &opened.vault, name, email).await?;
    opened.store.close().await;
    print(&created, json);
    Ok(())
}

pub async fn create_organization(db: &DatabaseOptions, name: &str, email: &str, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await?;
    let created = new_organization(&opened.store, &opened.vault, name, email).await?;
    opened.store.close().await;
    print(&created, json);
    Ok(())
}

/// `switchyard users create --org ID EMAIL [--password-stdin]`. The password, when
/// asked for, is read and checked before anything is written.
pub async fn create_user(db: &DatabaseOptions, org: i64, email: &str, password_stdin: bool, json: bool) -> anyhow::Result<()> {
    let email = checked_email(email)?;
    let password_hash = if password_stdin { Some(hash_password(read_password()?).await?) } else { None };
    let opened = database::open(db).await?;
    let secret = NewTenantSecret::generate(&opened.vault, Tenant::User);
    let created = opened.store.create_user_with_password(org, email, secret.stored(), password_hash.as_deref()).await;
    opened.store.close().await;
    let user = match created {
        Ok(user) => user,
        Err(StoreError::Conflict(message)) => bail!(message),
        Err(e) => return Err(e.into()),
    };
    let secret = &secret.secret;
    print(
        &json!({"user": user_json(&user, secret), "authorization": format!("User {secret}, Organization <organization secret>")}),
        json,
    );
    Ok(())
}

/// `switchyard users set-password ID`: the password from standard input (one
/// line), never from the command line, where other users of the machine see it.
/// Ends the user's sessions.
pub async fn set_password(db: &DatabaseOptions, id: i64) -> anyhow::Result<()> {
    let hash = hash_password(read_password()?).await?;
    let opened = database::open(db).await?;
    let done = opened.store.set_password(id, Some(&hash)).await;
    opened.store.close().await;
    match done {
        Ok(true) => {
            eprintln!("password set for user {id}; the user's sessions have ended");
            Ok(())
        }
        Ok(false) => bail!("no user {id}"),
        Err(StoreError::Conflict(message)) => bail!(message),
        Err(e) => Err(e.into()),
    }
}

/// One line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
}

async fn hash_password(password: String) -> anyhow::Result<String> {
    let hashed = tokio::task::spawn_blocking(move || switchyard_engine::password::hash(&password)).await?;
    Ok(hashed?)
}

pub async fn reset_organization_secret(db: &DatabaseOptions, id: i64, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await?;
    let secret = NewTenantSecret::generate(&opened.vault, Tenant::Organization);
    let found = opened.store.reset_organization_secret(id, secret.stored()).await?;
    opened.store.close().await;
    if !found {
        bail!("no organization {id}");
    }
    print(&json!({"organization": {"id": id, "secret": secret.secret}}), json);
    Ok(())
}

pub async fn reset_user_secret(db: &DatabaseOptions, id: i64, json: bool) -> anyhow::Result<()> {
    let opened = database::open(db).await.context("opening the database")?;
    let secret = NewTenantSecret::generate(&opened.vault, Tenant::User);
    let found = opened.store.reset_user_secret(id, secret.stored()).await?;
    opened.store.close().await;
    if !found {
        bail!("no user {id}");
    }
    print(&json!({"user": {"id": id, "secret": secret.secret}}), json);
    Ok(())
}

/// `switchyard orgs list`: every organization (no secrets).
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
