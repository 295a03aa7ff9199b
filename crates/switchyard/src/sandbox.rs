//! `switchyard sandbox`: the vendor simulators on loopback, for offline work.

use std::net::SocketAddr;

use anyhow::Context;
use serde_json::json;
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator};

pub async fn run(listen_bigcommerce: SocketAddr, json: bool) -> anyhow::Result<()> {
    let sim = BigCommerceSimulator::demo();
    let listener = tokio::net::TcpListener::bind(listen_bigcommerce)
        .await
        .with_context(|| format!("binding the BigCommerce simulator to {listen_bigcommerce}"))?;
    let addr = listener.local_addr()?;
    let credentials = json!({
        "bigcommerce": {
            "storeUrl": format!("http://{addr}/stores/{}/api/v2", bigcommerce::DEMO_STORE_HASH),
            "username": bigcommerce::DEMO_USERNAME,
            "apiToken": bigcommerce::DEMO_API_TOKEN,
        }
    });
    if json {
        println!("{credentials}");
    } else {
        println!("BigCommerce simulator on http://{addr}");
        println!("  API Path  (store.url): {}", credentials["bigcommerce"]["storeUrl"].as_str().unwrap_or(""));
        println!("  Username  (username) : {}", bigcommerce::DEMO_USERNAME);
        println!("  API Token (password) : {}", bigcommerce::DEMO_API_TOKEN);
        println!("Press Ctrl-C to stop.");
    }
    tracing::info!(%addr, "BigCommerce simulator listening");
    tokio::select! {
        served = bigcommerce::serve(listener, sim) => served.context("BigCommerce simulator")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
