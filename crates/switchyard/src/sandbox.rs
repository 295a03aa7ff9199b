//! `switchyard sandbox`: the vendor simulators on loopback, for offline work.

use std::net::SocketAddr;

use anyhow::Context;
use serde_json::{json, Value};
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator};
use switchyard_simulators::keap::{self, KeapSimulator};

/// The demo store's credentials: the legacy API path with user and token, and the
/// token-mode path (`authentication.type=custom`, where vendor webhooks exist).
pub fn bigcommerce_credentials(addr: std::net::SocketAddr) -> Value {
    json!({
        "storeUrl": format!("http://{addr}/stores/{}/api/v2", bigcommerce::DEMO_STORE_HASH),
        "tokenStoreUrl": format!("http://{addr}/stores/{}/v2", bigcommerce::DEMO_STORE_HASH),
        "username": bigcommerce::DEMO_USERNAME,
        "apiToken": bigcommerce::DEMO_API_TOKEN,
    })
}

/// The demo Keap app as the sandbox prints it: what an Infusionsoft instance needs.
pub fn keap_credentials(addr: SocketAddr) -> Value {
    json!({
        "authorizeUrl": format!("http://{addr}/app/oauth/authorize"),
        "tokenUrl": format!("http://{addr}/token"),
        "baseUrl": format!("http://{addr}/crm"),
        "clientId": keap::DEMO_CLIENT_ID,
        "clientSecret": keap::DEMO_CLIENT_SECRET,
        "privateKey": keap::DEMO_PRIVATE_KEY,
        // The demo account's sign-in on the authorize page, before the approval.
        "username": keap::DEMO_USERNAME,
        "password": keap::DEMO_PASSWORD,
    })
}

pub async fn run(listen_bigcommerce: SocketAddr, listen_keap: SocketAddr, json: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen_bigcommerce)
        .await
        .with_context(|| format!("binding the BigCommerce simulator to {listen_bigcommerce}"))?;
    let addr = listener.local_addr()?;
    let keap_listener = tokio::net::TcpListener::bind(listen_keap)
        .await
        .with_context(|| format!("binding the Keap simulator to {listen_keap}"))?;
    let keap_addr = keap_listener.local_addr()?;
    let credentials = json!({
        "bigcommerce": bigcommerce_credentials(addr),
        "keap": keap_credentials(keap_addr),
    });
    if json {
        println!("{credentials}");
    } else {
        let k = &credentials["keap"];
        let field = |v: &Value, key: &str| v[key].as_str().unwrap_or("").to_owned();
        println!("BigCommerce simulator on http://{addr}");
        println!("  API Path  (store.url): {}", field(&credentials["bigcommerce"], "storeUrl"));
        println!("  Username  (username) : {}", bigcommerce::DEMO_USERNAME);
        println!("  API Token (password) : {}", bigcommerce::DEMO_API_TOKEN);
        println!("  token mode: authentication.type=custom, store.url {}, oauth.user.token the API token, oauth.api.key any", field(&credentials["bigcommerce"], "tokenStoreUrl"));
        println!("Keap simulator on http://{keap_addr} (app \"{}\", account {})", keap::DEMO_APP_NAME, keap::DEMO_ACCOUNT);
        println!("  Authorize URL (oauth.authorization.url): {}", field(k, "authorizeUrl"));
        println!("  Token URL     (oauth.token.url)        : {}", field(k, "tokenUrl"));
        println!("  Base URL      (base.url)               : {}", field(k, "baseUrl"));
        println!("  Client ID     (oauth.api.key)          : {}", keap::DEMO_CLIENT_ID);
        println!("  Client Secret (oauth.api.secret)       : {}", keap::DEMO_CLIENT_SECRET);
        println!("  Encrypted Key (infusionsoft.private.key): {}", keap::DEMO_PRIVATE_KEY);
        println!("  Sign-in on the authorize page          : {} / {}", keap::DEMO_USERNAME, keap::DEMO_PASSWORD);
        println!("  Auto-approve for scripts: curl -X PUT -d '{{\"auto_approve\":true}}' http://{keap_addr}/_sim/settings");
        println!("Press Ctrl-C to stop.");
    }
    tracing::info!(%addr, %keap_addr, "simulators listening");
    tokio::select! {
        served = bigcommerce::serve(listener, BigCommerceSimulator::demo()) => served.context("BigCommerce simulator")?,
        served = keap::serve(keap_listener, KeapSimulator::demo()) => served.context("Keap simulator")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
