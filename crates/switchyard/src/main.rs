//! The `switchyard` command. Each role is a subcommand; secrets go to standard
//! output once, the log goes to standard error and never holds one.

mod bench;
mod bench_events;
mod bench_scale;
mod database;
mod migrate_db;
mod nodes;
mod sandbox;
mod serve;
mod tenants;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// jemalloc with background threads returns freed memory to the OS within seconds
/// (dirty pages decay over 10 s); glibc's malloc kept what 1,500 slow clients had
/// used (RSS 15 MB before, 40 MB after they were gone). docs/choices.md, "Memory".
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "switchyard", version, about = "A self-hosted integration platform that speaks the Cloud Elements API")]
struct Cli {
    /// Log format on standard error: `text` for people, `json` (one object a
    /// line) for log collectors. The level comes from SWITCHYARD_LOG (default info).
    #[arg(long, global = true, env = "SWITCHYARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// Where the data lives and the key that opens it; shared by every command that
/// touches the database.
#[derive(Args, Clone, Debug)]
pub struct DatabaseOptions {
    /// Database URL: `sqlite://PATH` (embedded, created if missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (an existing database; see
    /// docs/deploy.md).
    #[arg(long = "database", env = "SWITCHYARD_DATABASE_URL", default_value = "sqlite://switchyard.db")]
    pub database_url: String,
    /// Master key ring file; created with mode 0600 on first start.
    /// [default: switchyard.key beside the database]
    #[arg(long, env = "SWITCHYARD_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Database connections this process keeps open at most (at least 1); with
    /// several nodes on one PostgreSQL server, keep nodes × this below its
    /// `max_connections`. [default: 10 on PostgreSQL, 8 on SQLite]
    #[arg(long, env = "SWITCHYARD_DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub database_max_connections: Option<u32>,
    // The key itself may come from SWITCHYARD_MASTER_KEY (base64 of 32 bytes, or a
    // comma list with the current key first); it is read from the environment only,
    // never from a flag, so it cannot show in `ps`.
}

/// Event polling and delivery (see crates/events/README.md).
#[derive(Args, Clone, Debug)]
pub struct EventOptions {
    /// Seconds of the retry unit: after x failed attempts the next comes about
    /// BASE * 4^x seconds later (±20 % jitter, at most an hour, later if the
    /// receiver sent Retry-After). Fractions allowed.
    #[arg(long, env = "SWITCHYARD_EVENT_RETRY_BASE", default_value_t = 1.0)]
    pub event_retry_base: f64,
    /// Delivery attempts per event; after the last failure the event stays queued
    /// (state failed) until redelivered through the API.
    #[arg(long, env = "SWITCHYARD_EVENT_MAX_ATTEMPTS", default_value_t = 9)]
    pub event_max_attempts: u32,
    /// Seconds a callback may take to answer before the attempt counts as failed.
    /// A claimed job is leased for twice this plus 5 s.
    #[arg(long, env = "SWITCHYARD_EVENT_DELIVERY_TIMEOUT", default_value_t = 15.0)]
    pub event_delivery_timeout: f64,
    /// Callback requests in flight at once.
    #[arg(long, env = "SWITCHYARD_EVENT_DELIVERY_CONCURRENCY", default_value_t = 64)]
    pub event_delivery_concurrency: usize,
    /// Seconds each poll looks back before the last change it saw (vendor clocks
    /// and second-resolution dates); what it sees again is not announced twice.
    #[arg(long, env = "SWITCHYARD_EVENT_POLL_OVERLAP", default_value_t = 120.0)]
    pub event_poll_overlap: f64,
    /// Polls running at once (each instance polls at most once at a time).
    #[arg(long, env = "SWITCHYARD_EVENT_POLL_CONCURRENCY", default_value_t = 16)]
    pub event_poll_concurrency: usize,
    /// Days a finished event (delivered, stopped or failed) stays in the event log;
    /// pending ones stay until they finish.
    #[arg(long, env = "SWITCHYARD_EVENT_RETENTION_DAYS", default_value_t = 7.0)]
    pub event_retention_days: f64,
    /// Events the whole event log keeps at most: past it the oldest finished
    /// ones go (pending ones stay, whatever the number). See docs/deploy.md for sizes.
    #[arg(long, env = "SWITCHYARD_EVENT_LOG_MAX_ROWS", default_value_t = switchyard_events::retention::DEFAULT_MAX_ROWS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub event_log_max_rows: u64,
    /// Events each instance keeps at most in the event log, the same way.
    #[arg(long, env = "SWITCHYARD_EVENT_LOG_MAX_ROWS_PER_INSTANCE",
          default_value_t = switchyard_events::retention::DEFAULT_PER_INSTANCE, value_parser = clap::value_parser!(u64).range(1..))]
    pub event_log_max_rows_per_instance: u64,
    /// Hours during which a vendor webhook call sent again (the values the element's
    /// events.webhooks.digest names all equal) is answered with the first call's
    /// eventId instead of becoming another event.
    #[arg(long, env = "SWITCHYARD_EVENT_DEDUPE_HOURS", default_value_t = 72.0)]
    pub event_dedupe_hours: f64,
    /// Seconds between two checks of the vendor webhooks registered (a vendor may
    /// deactivate a hook whose calls kept failing; it is turned back on).
    #[arg(long, env = "SWITCHYARD_EVENT_WEBHOOK_CHECK_INTERVAL", default_value_t = 3600.0)]
    pub event_webhook_check_interval: f64,
}

/// Limits on client connections, against clients that send slowly or not at all.
#[derive(Args, Clone, Debug)]
pub struct ConnectionOptions {
    /// Seconds a client may take to send a whole request head, counted from its
    /// first byte (or from connecting); then the connection is closed.
    #[arg(long, env = "SWITCHYARD_HEADER_READ_TIMEOUT", default_value_t = 10.0)]
    pub header_read_timeout: f64,
    /// Seconds a keep-alive connection may stay idle after an answer.
    #[arg(long, env = "SWITCHYARD_IDLE_TIMEOUT", default_value_t = 60.0)]
    pub idle_timeout: f64,
    /// Client connections open at once; more wait in the listen backlog.
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: u32,
    /// Seconds writing an answer may make no progress (the client reads none of
    /// it) before the connection is closed.
    #[arg(long, env = "SWITCHYARD_WRITE_TIMEOUT", default_value_t = 60.0)]
    pub write_timeout: f64,
    /// Reverse proxies (comma list of addresses and CIDRs) whose
    /// `X-Forwarded-For` names the client, for per-address login throttling.
    /// Other peers' header is ignored. [default: none]
    #[arg(long, env = "SWITCHYARD_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<String>,
}

// Parsed once at start: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the API server under /elements/api-v2. On an empty database it first
    /// creates an organization and user and prints their secrets on stdout.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where vendors reach this server (scheme, host, port; no path), for the
        /// webhooks it registers at them. [default: http:// and the listen address]
        #[arg(long, env = "SWITCHYARD_PUBLIC_URL")]
        public_url: Option<String>,
        /// Run the vendor simulators inside this process and make them the
        /// default vendor endpoints of the built-in elements (a demo, offline).
        /// Also allows loopback vendor and callback addresses (127.0.0.0/8, ::1),
        /// where the simulators listen.
        #[arg(long)]
        sandbox: bool,
        /// Origins that may show the Connect page (`/connect/{token}`) in a frame,
        /// comma-separated (https://app.example.com). The console is never framed.
        /// [default: none]
        #[arg(long, env = "SWITCHYARD_CONNECT_FRAME_ANCESTORS", value_delimiter = ',')]
        connect_frame_ancestors: Vec<String>,
        /// Private, loopback or link-local vendor and callback addresses that may
        /// be called anyway (comma list of hosts and CIDRs, e.g. 127.0.0.0/8,::1).
        /// Allow-listed hosts may also use plain http. [default: none]
        #[arg(long, env = "SWITCHYARD_OUTBOUND_ALLOW", default_value = "")]
        outbound_allow: String,
        /// Seconds a vendor call may take before it is abandoned (504).
        #[arg(long, env = "SWITCHYARD_VENDOR_TIMEOUT", default_value_t = 30)]
        vendor_timeout: u64,
        /// Vendor calls in flight at once per instance; more wait their turn.
        #[arg(long, env = "SWITCHYARD_VENDOR_CONCURRENCY", default_value_t = switchyard_engine::throttle::DEFAULT_PER_INSTANCE)]
        vendor_concurrency: usize,
        /// Also load element definitions (*.yaml, *.json) from this directory.
        #[arg(long, env = "SWITCHYARD_ELEMENTS_DIR")]
        elements_dir: Option<PathBuf>,
        /// Seconds before expiry at which OAuth access tokens are refreshed (at most
        /// half a token's lifetime).
        #[arg(long, env = "SWITCHYARD_OAUTH_REFRESH_MARGIN", default_value_t = 300)]
        oauth_refresh_margin: u64,
        /// Seconds a token refresh lease lasts without renewal: how long other
        /// servers on the database wait for a refreshing server that died.
        #[arg(long, env = "SWITCHYARD_OAUTH_REFRESH_LEASE", default_value_t = 30)]
        oauth_refresh_lease: u64,
        /// Seconds a looked-up caller or opened instance is remembered at most.
        /// They are forgotten as soon as they change (this node's writes at once;
        /// other nodes' as PostgreSQL announces them, other processes' on one
        /// SQLite file within a second); this bounds what a missed change costs.
        #[arg(long, env = "SWITCHYARD_CACHE_TTL", default_value_t = 600.0)]
        cache_ttl: f64,
        /// Idle connections kept open per vendor host, shared by every instance
        /// on that host. Set it to about the vendor calls in flight at once to
        /// one host, so busy instances reuse connections instead of opening
        /// (and, against a real vendor, handshaking TLS on) new ones.
        #[arg(long, env = "SWITCHYARD_VENDOR_MAX_IDLE_PER_HOST", default_value_t = switchyard_engine::client::DEFAULT_MAX_IDLE_PER_HOST)]
        vendor_max_idle_per_host: usize,
        /// Vendor calls the whole call log keeps at most (the oldest go first,
        /// every 10 minutes; rows older than 7 days go too). See docs/deploy.md for sizes.
        #[arg(long, env = "SWITCHYARD_CALL_LOG_MAX_ROWS", default_value_t = switchyard_engine::call_log::DEFAULT_MAX_ROWS,
              value_parser = clap::value_parser!(u64).range(1..))]
        call_log_max_rows: u64,
        /// Vendor calls each instance keeps at most in the call log.
        #[arg(long, env = "SWITCHYARD_CALL_LOG_MAX_ROWS_PER_INSTANCE",
              default_value_t = switchyard_engine::call_log::DEFAULT_PER_INSTANCE, value_parser = clap::value_parser!(u64).range(1..))]
        call_log_max_rows_per_instance: u64,
        #[command(flatten)]
        connections: ConnectionOptions,
        #[command(flatten)]
        events: EventOptions,
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// Create the first organization and user; prints their secrets once.
    Init {
        /// Print JSON: {"organization":{..},"user":{..},"authorization":".."}.
        #[arg(long)]
        json: bool,
        /// Name of the organization.
        #[arg(long, default_value = "default")]
        name: String,
        /// Email address of the first user.
        #[arg(long, default_value = "admin@localhost")]
        email: String,
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// Manage organizations.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Add a new current master key and re-encrypt every secret under it; on
    /// several nodes, `--add` on every node, then `--activate` on one.
    RotateKey {
        /// Rows re-encrypted per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
        /// Only add a new key to this node's key file (not current); prints its id.
        #[arg(long, conflicts_with = "activate")]
        add: bool,
        /// With --add: add the keys of this key file (another node's) instead of a new one.
        #[arg(long, value_name = "FILE", requires = "add")]
        key_from: Option<PathBuf>,
        /// Make a key every node has current (the newest of this node's ring, or
        /// --key-id) and re-encrypt every secret under it.
        #[arg(long)]
        activate: bool,
        /// With --activate: the key id to make current.
        #[arg(long, requires = "activate")]
        key_id: Option<u32>,
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// Copy an installation from its SQLite file into a new, empty PostgreSQL
    /// database (ids kept; secrets stay sealed under the same master key). Stop
    /// the servers first; prints every table's row count on both sides.
    MigrateDb {
        /// The SQLite database to copy: sqlite://PATH.
        #[arg(long)]
        from: String,
        /// The PostgreSQL database to fill: postgres://...; it must exist and hold no rows.
        #[arg(long)]
        to: String,
        /// Rows per INSERT statement (all in one transaction).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
    },
    /// Rewrite a SQLite database so that it gives the space of pruned rows back
    /// to the file system (auto_vacuum=INCREMENTAL), once, for a file made before
    /// that was the default and too large to be converted at start. Stop the
    /// servers first; it needs as much free disk as the file. Nothing to do on
    /// PostgreSQL (autovacuum).
    Vacuum {
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// Measure Switchyard against the simulator it fronts: the same load straight
    /// at the simulator and through a hub, each in its own process; prints a table
    /// of requests/s, p50, p99, their ratio and Switchyard's resident memory.
    Bench {
        /// Requests per measured run.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Concurrent clients, a comma list.
        #[arg(long, value_delimiter = ',', default_value = "1,32")]
        concurrency: Vec<usize>,
        /// Records per list call.
        #[arg(long, default_value_t = 50)]
        page_size: usize,
        /// Run Switchyard on this PostgreSQL database (postgres://...; it must hold
        /// no installation yet) instead of a new SQLite file.
        #[arg(long)]
        database: Option<String>,
    },
    /// Measure events: vendor webhook calls into Switchyard at a fixed rate, each
    /// enriched through the hub and delivered signed to a local receiver; prints
    /// events/s and end-to-end p50/p99, with a healthy and a failing receiver.
    BenchEvents {
        /// Vendor webhook calls per second.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Seconds of calls per run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Share of deliveries the failing receiver answers with 500.
        #[arg(long, default_value_t = 0.2)]
        fail_share: f64,
        /// Run Switchyard on this PostgreSQL database (postgres://...; it must hold
        /// no installation yet) instead of a new SQLite file.
        #[arg(long)]
        database: Option<String>,
        /// `serve` processes on the one database, taking the vendor calls in turn.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
        nodes: u32,
    },
    /// Measure what many instances cost: creates N BigCommerce instances, then
    /// with --interval prints the server's CPU share over a window while they poll
    /// the simulator (polls due, done and late, RSS, database size), and with
    /// --hot the hub call rate, latency, CPU per call and new connections per
    /// second when calls are spread over K instance tokens.
    BenchScale {
        /// Instances to create (through the API).
        #[arg(long, default_value_t = 1000)]
        instances: usize,
        /// Turn polling on at this interval, minutes, and measure it.
        #[arg(long)]
        interval: Option<f64>,
        /// Seconds measured (per --hot count for hub calls).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Hub calls spread over this many instances' tokens, a comma list (one
        /// run each; the first is the baseline, e.g. 1,1000,10000).
        #[arg(long, value_delimiter = ',')]
        hot: Vec<usize>,
        /// Concurrent hub call loops.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Instances created at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Run Switchyard on this PostgreSQL database (postgres://...; it must hold
        /// no installation yet) instead of a new SQLite file.
        #[arg(long)]
        database: Option<String>,
    },
    /// Run the vendor simulators (BigCommerce, Keap) on loopback for offline development.
    Sandbox {
        /// Print the demo credentials as JSON.
        #[arg(long)]
        json: bool,
        /// Address of the BigCommerce simulator.
        #[arg(long, env = "SWITCHYARD_LISTEN_BIGCOMMERCE", default_value = "127.0.0.1:0")]
        listen_bigcommerce: SocketAddr,
        /// Address of the Keap simulator.
        #[arg(long, env = "SWITCHYARD_LISTEN_KEAP", default_value = "127.0.0.1:0")]
        listen_keap: SocketAddr,
    },
}

#[derive(Subcommand)]
enum OrgsCommand {
    /// Create an organization and its first user; prints their secrets once.
    Create {
        name: String,
        #[arg(long, default_value = "admin@localhost")]
        email: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// List the organizations (ids, names; secrets are never stored, see reset-secret).
    List {
        /// Print a JSON array of {"id","name","createdDate"}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// Replace an organization's secret (e.g. after a leak); prints the new one once.
    ResetSecret {
        id: i64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseOptions,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user in an organization; prints the user's secret once.
    Create {
        #[arg(long = "org")]
        org: i64,
        email: String,
        /// Also give the user a password (at least 12 characters) for console
        /// login, read as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// List users (ids, organizations, emails; secrets are never stored, see reset-secret).
    List {
        /// Only this organization's users.
        #[arg(long = "org")]
        org: Option<i64>,
        /// Print a JSON array of {"id","organizationId","emailAddress","createdDate"}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// Replace a user's secret; prints the new one once.
    ResetSecret {
        id: i64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseOptions,
    },
    /// Set a user's password for console login (POST /elements/j_spring_security_check),
    /// read as one line from standard input (at least 12 characters). Ends the
    /// user's sessions. One user per email may have a password.
    SetPassword {
        id: i64,
        #[command(flatten)]
        db: DatabaseOptions,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Colour only for a person at a terminal: piped to a file or a collector, escape
    // codes would be noise in every line.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG").unwrap_or_else(|_| "info".into()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
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
            call_log_max_rows,
            call_log_max_rows_per_instance,
            connections,
            events,
            db,
        } => {
            let options = serve::ServeOptions {
                listen,
                public_url,
                sandbox,
                connect_frame_ancestors,
                outbound_allow,
                vendor_timeout: std::time::Duration::from_secs(vendor_timeout),
                vendor_concurrency,
                elements_dir,
                oauth_refresh_margin: std::time::Duration::from_secs(oauth_refresh_margin),
                oauth_refresh_lease: std::time::Duration::from_secs(oauth_refresh_lease),
                cache_ttl,
                vendor_max_idle_per_host,
                call_log: switchyard_engine::call_log::Retention {
                    max_rows: call_log_max_rows,
                    per_instance: call_log_max_rows_per_instance,
                    ..Default::default()
                },
                connections,
                events,
            };
            serve::run(&db, options).await
        }
        Command::Init { json, name, email, db } => tenants::init(&db, &name, &email, json).await,
        Command::Orgs(OrgsCommand::Create { name, email, json, db }) => {
            tenants::create_organization(&db, &name, &email, json).await
        }
        Command::Orgs(OrgsCommand::List { json, db }) => tenants::list_organizations(&db, json).await,
        Command::Users(UsersCommand::List { org, json, db }) => tenants::list_users(&db, org, json).await,
        Command::Orgs(OrgsCommand::ResetSecret { id, json, db }) => {
            tenants::reset_organization_secret(&db, id, json).await
        }
        Command::Users(UsersCommand::Create { org, email, password_stdin, json, db }) => {
            tenants::create_user(&db, org, &email, password_stdin, json).await
        }
        Command::Users(UsersCommand::ResetSecret { id, json, db }) => {
            tenants::reset_user_secret(&db, id, json).await
        }
        Command::Users(UsersCommand::SetPassword { id, db }) => tenants::set_password(&db, id).await,
        Command::RotateKey { batch, add, key_from, activate, key_id, db } => {
            let rotation = match (add, activate) {
                (true, _) => database::Rotation::Add { key_from },
                (_, true) => database::Rotation::Activate { key_id },
                _ => database::Rotation::Whole,
            };
            database::rotate_key(&db, rotation, batch).await
        }
        Command::Vacuum { db } => database::vacuum(&db).await,
        Command::MigrateDb { from, to, batch } => migrate_db::run(&from, &to, batch as usize).await,
        Command::Bench { requests, concurrency, page_size, database } => {
            bench::run(bench::BenchOptions { requests, concurrency, page_size, database }).await
        }
        Command::BenchEvents { rate, seconds, fail_share, database, nodes } => {
            bench_events::run(bench_events::EventBenchOptions { rate, seconds, fail_share, database, nodes: nodes as usize }).await
        }
        Command::BenchScale { instances, interval, seconds, hot, clients, concurrency, database } => {
            bench_scale::run(bench_scale::ScaleBenchOptions { instances, interval, seconds, hot, clients, concurrency, database }).await
        }
        Command::Sandbox { json, listen_bigcommerce, listen_keap } => sandbox::run(listen_bigcommerce, listen_keap, json).await,
    }
}
