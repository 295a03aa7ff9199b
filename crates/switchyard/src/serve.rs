//! `switchyard serve`: the API server, optionally with the simulators inside.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use switchyard_elements::Catalog;
use switchyard_engine::client::VendorClient;
use switchyard_engine::outbound::OutboundPolicy;
use switchyard_engine::{Dispatcher, InstanceLimits, RetryPolicy};
use switchyard_server::AppState;
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator};
use switchyard_simulators::keap::KeapSimulator;

use crate::{database, nodes, sandbox, tenants, ConnectionOptions, DatabaseOptions, EventOptions};

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub sandbox: bool,
    /// Origins that may frame the Connect page (`--connect-frame-ancestors`).
    pub connect_frame_ancestors: Vec<String>,
    pub outbound_allow: String,
    pub vendor_timeout: Duration,
    pub vendor_concurrency: usize,
    pub elements_dir: Option<PathBuf>,
    /// Refresh OAuth access tokens this long before they expire.
    pub oauth_refresh_margin: Duration,
    /// How long another server waits for a refresh whose server stopped answering.
    pub oauth_refresh_lease: Duration,
    /// Seconds callers and opened instances are remembered at most (`--cache-ttl`).
    pub cache_ttl: f64,
    /// Idle vendor connections kept per host (`--vendor-max-idle-per-host`).
    pub vendor_max_idle_per_host: usize,
    /// How the vendor call log is bounded (`--call-log-max-rows`, ...).
    pub call_log: switchyard_engine::call_log::Retention,
    pub connections: ConnectionOptions,
    pub events: EventOptions,
}

pub async fn run(db: &DatabaseOptions, options: ServeOptions) -> anyhow::Result<()> {
    let ServeOptions {
        listen,
        public_url,
        sandbox,
        connect_frame_ancestors,
        outbound_allow,
        vendor_timeout,
        vendor_concurrency,
        elements_dir,
        oauth_refresh_margin,
        oauth_refresh_lease,
        cache_ttl,
        vendor_max_idle_per_host,
        call_log,
        connections,
        events,
    } = options;
    // Everything that can be refused is checked, opened and bound before the first
    // organization is created, so a failed start never prints secrets it then
    // abandons (and a later start would not print again).
    let (delivery_settings, poller_settings, retention) = event_settings(&events)?;
    let hook_check = event_seconds("event-webhook-check-interval", events.event_webhook_check_interval, 1.0)?;
    let limits = connection_limits(&connections)?;
    let trusted = trusted_proxies(&connections.trusted_proxy)?;
    let cache_ttl = event_seconds("cache-ttl", cache_ttl, 0.001)?;
    let console_options = switchyard_console::ConsoleOptions {
        connect_frame_ancestors: switchyard_console::parse_frame_ancestors(&connect_frame_ancestors)
            .map_err(|e| anyhow::anyhow!("--connect-frame-ancestors: {e}"))?,
    };
    let mut policy = OutboundPolicy::parse(&outbound_allow).context("--outbound-allow")?;
    if sandbox {
        // The simulators run on loopback; allowing it is what --sandbox means.
        policy.extend(&OutboundPolicy::allow_loopback());
    }

    let mut catalog = Catalog::builtin();
    if let Some(dir) = elements_dir.as_deref() {
        let n = catalog.load_dir(dir).with_context(|| format!("loading elements from {}", dir.display()))?;
        tracing::info!(count = n, dir = %dir.display(), "loaded element definitions");
    }

    let sandbox_credentials = if sandbox {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(bigcommerce::serve(listener, BigCommerceSimulator::demo()));
        let store_url = format!("http://{addr}/stores/{}/api/v2", bigcommerce::DEMO_STORE_HASH);
        catalog.set_default("bigcommerce", "store.url", &store_url);
        catalog.set_default("bigcommerce", "username", bigcommerce::DEMO_USERNAME);
        catalog.set_default("bigcommerce", "password", bigcommerce::DEMO_API_TOKEN);
        let keap_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let keap_addr = keap_listener.local_addr()?;
        tokio::spawn(switchyard_simulators::keap::serve(keap_listener, KeapSimulator::demo()));
        let keap = sandbox::keap_credentials(keap_addr);
        // The Infusionsoft elements' vendor endpoints (platform-api.md keys); a no-op
        // for elements this build does not have.
        for element in ["infusionsoftcrm", "infusionsoftmarketing"] {
            for (key, field) in [("oauth.authorization.url", "authorizeUrl"), ("oauth.token.url", "tokenUrl"), ("base.url", "baseUrl")] {
                catalog.set_default(element, key, keap[field].as_str().unwrap_or_default());
            }
        }
        let credentials = json!({
            "bigcommerce": sandbox::bigcommerce_credentials(addr),
            "keap": keap,
        });
        tracing::info!(%addr, %keap_addr, "BigCommerce and Keap simulators running in this process");
        Some(credentials)
    } else {
        None
    };

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let public_url = public_url_for(public_url.as_deref(), addr)?;
    let opened = database::open(db).await?;
    // Other nodes' and processes' writes reach this node's caches: as they commit
    // on PostgreSQL, within a second on SQLite.
    let changes = opened.store.listen_changes().await.context("following other nodes' changes")?;
    let paging_key = {
        use rand::RngCore;
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        // One key per database, so tokens survive restarts and work across servers.
        opened.store.meta_get_or_insert("paging.key", &fresh).await?
    };
    let client = VendorClient::with_idle_per_host(policy.clone(), vendor_timeout, vendor_max_idle_per_host);
    let mut state = AppState::new(opened.store.clone(), opened.vault.clone(), client.clone(), catalog, paging_key);
    // The writer AppState::new started ends as its sender is replaced here.
    state.engine.call_log = switchyard_engine::call_log::CallLog::spawn(opened.store.clone(), call_log);
    state.engine.vendors = Dispatcher::new(client, RetryPolicy::default(), InstanceLimits::new(vendor_concurrency));
    state.sandbox = sandbox_credentials;
    state.engine.oauth = switchyard_engine::oauth::OAuthRuntime::new(oauth_refresh_margin, oauth_refresh_lease);
    state.engine.public_url = public_url;
    state.engine.instances = switchyard_engine::instance::InstanceCache::with_ttl(cache_ttl);
    state.callers = switchyard_server::cache::CallerCache::with_ttl(cache_ttl);
    state.event_dedupe = retention.dedupe;
    state.trusted_proxies = trusted;
    // The first login for an unknown email would otherwise pay for making the
    // dummy password hash, and take visibly longer than a wrong password.
    tokio::task::spawn_blocking(|| switchyard_engine::password::verify_nobody(""));

    // Events: the delivery worker and the poller run beside the API and stop with it.
    let ctx = switchyard_events::Context {
        store: state.engine.store.clone(),
        vault: state.engine.vault.clone(),
        catalog: state.engine.catalog.clone(),
    };
    // The worker first, so the engine's health messages wake it; then it learns to
    // read records through the engine.
    let deliverer = switchyard_events::Deliverer::new(ctx.clone(), policy, delivery_settings);
    state.set_event_waker(deliverer.waker());
    let lister = Arc::new(state.engine.clone());
    let deliverer = deliverer.enriching_with(lister.clone());
    let poller = switchyard_events::Poller::new(ctx, lister, poller_settings, Some(deliverer.waker()));
    state.poll_schedule = poller.schedule_waker();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let delivery = tokio::spawn(deliverer.run(stopped(stop_rx.clone())));
    let pruning = tokio::spawn(switchyard_events::retention::run(state.engine.store.clone(), retention, stopped(stop_rx.clone())));
    let checking = tokio::spawn(switchyard_engine::webhooks::check_hooks(state.engine.clone(), hook_check, stopped(stop_rx.clone())));
    let polling = tokio::spawn(poller.run(stopped(stop_rx.clone())));
    let following = tokio::spawn(nodes::follow(changes, state.clone(), stopped(stop_rx)));

    let shutdown = shutdown_signal().context("installing the SIGTERM and SIGINT handlers")?;
    greet(&opened.store, &opened.vault, &database::shown_url(&db.database_url)).await?;
    if let Some(credentials) = &state.sandbox {
        println!("{}", json!({"sandbox": credentials}));
        println!("{}", json!({"console": demo_login(&opened.store, &state.engine.public_url).await?}));
    }
    tracing::info!(%addr, "serving the API at http://{addr}/elements/api-v2 and the console at http://{addr}/console");
    let call_log = state.engine.call_log.clone();
    let api = switchyard_server::router(state.clone());
    let console = switchyard_console::Console::new(state, api.clone(), &console_options);
    let app = api.merge(switchyard_console::router(console));
    switchyard_server::serve_router(listener, app, limits, shutdown).await?;
    let _ = stop_tx.send(true);
    let _ = polling.await;
    let _ = delivery.await;
    let _ = pruning.await;
    let _ = checking.await;
    let _ = following.await;
    // The last calls' log rows are written before the database closes.
    call_log.flush().await;
    // Pruning leases last a whole period: given back on a clean stop, so a node
    // started next (a restart with new caps) prunes at once instead of up to ten
    // minutes later. Only released if this node holds them.
    for lease in [switchyard_events::retention::LEASE, switchyard_engine::call_log::PRUNE_LEASE] {
        if let Err(e) = opened.store.release_lease(lease).await {
            tracing::debug!(lease, error = %e, "could not give the pruning lease back; it runs out on its own");
        }
    }
    opened.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The first start creates the first organization and user and prints their
/// secrets (the only time they exist in the clear); later starts say how to get
/// credentials again.
async fn greet(store: &switchyard_store::Store, vault: &switchyard_vault::Vault, database_url: &str) -> anyhow::Result<()> {
    let organizations = store.organization_count().await?;
    if organizations == 0 {
        let created = tenants::new_organization(store, vault, "default", "admin@localhost").await?;
        println!("{created}");
        tracing::info!("created the first organization and user; their secrets are on standard output only");
    } else {
        tracing::info!(
            organizations,
            database = database_url,
            "using an existing database; secrets are shown only when made: list ids with \
             `switchyard orgs list` / `switchyard users list`, then `switchyard orgs reset-secret ID` \
             or `switchyard users reset-secret ID` for new ones"
        );
    }
    Ok(())
}

/// The console's address and, under `--sandbox`, a login for it: the first
/// user's email, and a password made now (printed once) when that user has none.
/// A user who set their own keeps it (`switchyard users set-password ID` resets it).
async fn demo_login(store: &switchyard_store::Store, public_url: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/console", public_url.trim_end_matches('/'));
    let Some(user) = store.users(None).await?.into_iter().min_by_key(|u| u.id) else {
        return Ok(json!({"url": url}));
    };
    if store.password_for_email(&user.email).await?.is_some() {
        return Ok(json!({
            "url": url,
            "email": user.email,
            "password": null,
            "hint": format!("the password printed when it was set; `switchyard users set-password {}` sets another", user.id),
        }));
    }
    // 24 characters of a fresh 256-bit secret: about 143 bits, easy to paste.
    let password: String = switchyard_engine::secret::new_secret().chars().take(24).collect();
    let to_hash = password.clone();
    let hash = tokio::task::spawn_blocking(move || switchyard_engine::password::hash(&to_hash)).await??;
    store.set_password(user.id, Some(&hash)).await?;
    Ok(json!({"url": url, "email": user.email, "password": password}))
}

/// `--trusted-proxy`: addresses (a single address is a /32 or /128) and CIDRs.
fn trusted_proxies(given: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    given
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("--trusted-proxy: {s:?} is neither an IP address nor a CIDR"))
        })
        .collect()
}

/// The connection flags checked (seconds above zero, at most an hour; at least one connection).
fn connection_limits(o: &ConnectionOptions) -> anyhow::Result<switchyard_server::ConnectionLimits> {
    let seconds = |name: &str, v: f64| {
        if !v.is_finite() || v <= 0.0 || v > 3600.0 {
            anyhow::bail!("--{name} must be a number of seconds above 0 and at most 3600, not {v}");
        }
        Ok(Duration::from_secs_f64(v))
    };
    if o.max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    Ok(switchyard_server::ConnectionLimits {
        header_read_timeout: seconds("header-read-timeout", o.header_read_timeout)?,
        idle_timeout: seconds("idle-timeout", o.idle_timeout)?,
        max_connections: o.max_connections,
        write_timeout: seconds("write-timeout", o.write_timeout)?,
    })
}

/// `--public-url` checked (an http(s) origin, no path), or the listen address
/// (`0.0.0.0` and `::` read as loopback: a vendor cannot call "any address").
fn public_url_for(given: Option<&str>, listen: SocketAddr) -> anyhow::Result<String> {
    let Some(given) = given else {
        let ip = match listen.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
            ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        return Ok(format!("http://{}", SocketAddr::new(ip, listen.port())));
    };
    let url = url::Url::parse(given).with_context(|| format!("--public-url '{given}'"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.path() != "/" || url.query().is_some() {
        anyhow::bail!("--public-url must be an http(s) origin such as https://switchyard.example.com, not '{given}'");
    }
    Ok(given.trim_end_matches('/').to_owned())
}

/// A flag's seconds, from `min` to a day.
fn event_seconds(name: &str, v: f64, min: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v < min || v > 86_400.0 {
        anyhow::bail!("--{name} must be a number of seconds from {min} to 86400, not {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

/// The event settings from the flags; refuses values that make no sense.
fn event_settings(
    o: &EventOptions,
) -> anyhow::Result<(switchyard_events::DeliverySettings, switchyard_events::PollerSettings, switchyard_events::retention::Retention)> {
    let seconds = event_seconds;
    if o.event_max_attempts == 0 || o.event_delivery_concurrency == 0 || o.event_poll_concurrency == 0 {
        anyhow::bail!("--event-max-attempts, --event-delivery-concurrency and --event-poll-concurrency must be at least 1");
    }
    let delivery = switchyard_events::DeliverySettings {
        retry: switchyard_events::RetryPolicy {
            base: seconds("event-retry-base", o.event_retry_base, 0.001)?,
            max_attempts: o.event_max_attempts,
            ..Default::default()
        },
        timeout: seconds("event-delivery-timeout", o.event_delivery_timeout, 0.1)?,
        concurrency: o.event_delivery_concurrency,
        ..Default::default()
    };
    let poller = switchyard_events::PollerSettings {
        overlap: seconds("event-poll-overlap", o.event_poll_overlap, 0.0)?,
        concurrency: o.event_poll_concurrency,
        ..Default::default()
    };
    let days = o.event_retention_days;
    if !days.is_finite() || days <= 0.0 || days > 3650.0 {
        anyhow::bail!("--event-retention-days must be a number of days above 0 and at most 3650, not {days}");
    }
    let hours = o.event_dedupe_hours;
    if !hours.is_finite() || hours <= 0.0 || hours > 8760.0 {
        anyhow::bail!("--event-dedupe-hours must be a number of hours above 0 and at most 8760, not {hours}");
    }
    let retention = switchyard_events::retention::Retention {
        keep: Duration::from_secs_f64(days * 86_400.0),
        dedupe: Duration::from_secs_f64(hours * 3600.0),
        max_rows: o.event_log_max_rows,
        per_instance: o.event_log_max_rows_per_instance,
        ..Default::default()
    };
    Ok((delivery, poller, retention))
}

/// SIGTERM or Ctrl-C: stop accepting, let in-flight requests finish. The handlers
/// are installed when this is called, not when the future is first polled, so a
/// signal sent the moment the listen line is logged is a graceful stop too (before,
/// a TERM in that window killed the process outright).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut term, mut interrupt) = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?)
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! { _ = term.recv() => {}, _ = interrupt.recv() => {} }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.ok();
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
