//! `clearway`: the intake, the workers, dev tokens and operator views.

mod demo;

use anyhow::{Context, Result};
use api::app::{IntakeConfig, run};
use api::auth::{AuthConfig, dev_claims, mint_hs256};
use api::host::priority;
use api::ratelimit::RateConfig;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;
use workers::config::{Settings, connect};

/// mimalloc: with glibc's malloc, allocation was a fifth of the intake's CPU
/// under load (arena contention between the runtime's threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Clearway: an exchange order pipeline with a durable settlement workflow.
#[derive(Debug, Parser)]
#[command(name = "clearway", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Intake and workers in one process on the embedded default (SQLite);
    /// dev HS256 tokens enabled; demo funds for accounts 1001 and 1002.
    Up {
        /// Where to listen.
        #[arg(long, env = "CLEARWAY_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// The HTTP intake only.
    Serve {
        /// Where to listen.
        #[arg(long, env = "CLEARWAY_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// The step workers only.
    Work,
    /// Mints a development token (HS256, the data dir's dev secret); the
    /// token is the last line of stdout.
    Token {
        /// The account (`sub`); 0 and 1 are reserved (the outside world,
        /// the fee account).
        #[arg(long, default_value_t = 1001, value_parser = clap::value_parser!(u64).range(2..=i64::MAX as u64))]
        account: u64,
        /// Comma-separated scopes: trade, operate, audit.
        #[arg(long, default_value = "trade", value_delimiter = ',',
              value_parser = ["trade", "operate", "audit"])]
        scope: Vec<String>,
        /// Lifetime in seconds (at most a year).
        #[arg(long, default_value_t = 86_400,
              value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
        ttl_secs: u64,
    },
    /// Operator views.
    #[command(subcommand)]
    Ops(Ops),
    /// Starts everything in-process, drives an open-loop flow of orders from
    /// many accounts over HTTP, then prints throughput, latency percentiles
    /// and how many workflows completed. Also the intake benchmark.
    Demo {
        /// Orders per second.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
        rate: u64,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Funded accounts.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
        accounts: u64,
        /// HTTP keep-alive connections. Each holds one order in flight, so
        /// they cap the rate at connections ÷ latency: with too few, a slow
        /// moment throttles the generator itself and the load is no longer
        /// open-loop.
        #[arg(long, default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        connections: usize,
        /// Start the workers only when the load ends (the intake alone, as
        /// `clearway serve` runs when the workers are on other machines).
        #[arg(long)]
        intake_only: bool,
        /// Seconds of load at the same rate before the measured seconds;
        /// their latencies are printed on a line of their own.
        #[arg(long, default_value_t = 0)]
        warmup: u64,
    },
}

#[derive(Debug, Subcommand)]
enum Ops {
    /// Workflow counts per state, then the workflows in a state (or stuck ones).
    Workflows {
        /// pending, running, retrying, completed or dead.
        #[arg(long, value_parser = ["pending", "running", "retrying", "completed", "dead"])]
        state: Option<String>,
        /// Only workflows unchanged for this long (or past their lease).
        #[arg(long)]
        stuck_after_secs: Option<i64>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One order's workflows and every step attempt.
    Trace {
        /// The order id.
        #[arg(value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
        order_id: u64,
    },
    /// Auditors: replays the whole journal from nothing, checking every
    /// workflow's events and every stored engine snapshot against it; then
    /// checks each workflow's ledger legs, trade rows, published events and
    /// archived record (SHA-256, input, legs), each order row, the rows no
    /// event implies and every balance against the journal. Exits 1 naming
    /// each disagreement.
    Verify,
    /// Re-enqueues a dead or stuck workflow from its current step, or from
    /// `--step` (persist, settle, publish, archive). A completed workflow is
    /// refused, and so is one a worker has in hand (pending, running or
    /// retrying, changed within the last 60 s) unless `--force`.
    Replay {
        /// The workflow id (as `ops workflows` lists it).
        #[arg(value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
        workflow_id: u64,
        /// The step to start from.
        #[arg(long)]
        step: Option<String>,
        /// Enqueue it even though a worker has it in hand.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> Result<()> {
    // The shared runtime's threads (HTTP, streams, steps, blocking work)
    // give way to the engine's thread, which this main thread starts and
    // whose priority it keeps (`api::host::priority`).
    let nice = match std::env::var("CLEARWAY_RUNTIME_NICE") {
        Ok(v) => v
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=19).contains(n))
            .context("CLEARWAY_RUNTIME_NICE must be a whole number from 0 to 19")?,
        Err(_) => priority::SHARED_RUNTIME_NICE,
    };
    let runtime_nice = priority::this_thread_nice().unwrap_or(0) + nice;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            if nice > 0 {
                priority::lower_this_thread_to(runtime_nice);
            }
        })
        .build()
        .context("Failed to build the runtime")?
        .block_on(run_cli())
}

async fn run_cli() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    match cli.command {
        Cmd::Up { listen } => up(settings, listen).await,
        Cmd::Serve { listen } => serve(settings, listen).await,
        Cmd::Work => work(settings).await,
        Cmd::Token {
            account,
            scope,
            ttl_secs,
        } => token(&settings, account, &scope, ttl_secs).await,
        Cmd::Ops(ops) => self::ops(&settings, ops).await,
        Cmd::Demo {
            rate,
            seconds,
            accounts,
            connections,
            intake_only,
            warmup,
        } => {
            let args = demo::DemoArgs {
                rate,
                seconds,
                accounts,
                connections,
                intake_only,
                warmup,
            };
            demo::run(settings, args).await
        }
    }
}

async fn up(settings: Settings, listen: SocketAddr) -> Result<()> {
    let _lock = api::dev::lock_data_dir(&settings.data_dir)?;
    let secret = api::dev::load_or_create_secret(&settings.data_dir)?;
    let services = connect(&settings, "clearway-up").await?;
    release_stopped(&services).await?;
    let mut auth = AuthConfig::from_env().await?;
    auth.hs256_secret.get_or_insert(secret);
    let listener = bind(listen).await?;
    println!("clearway listening on http://{}", listener.local_addr()?);
    println!("data dir: {}", settings.data_dir.display());
    println!("get a dev token: clearway token --account 1001");
    if std::env::var_os("CLEARWAY_DATA_DIR").is_some() {
        println!(
            "  (with the same CLEARWAY_DATA_DIR={})",
            settings.data_dir.display()
        );
    }
    let config = IntakeConfig {
        auth,
        rate: RateConfig::from_env()?,
    };
    run(listener, services, config, true, true, shutdown_signal()).await
}

/// Puts back the jobs a stopped process left running on this data
/// directory's queues (the caller holds its lock), and says how many.
pub(crate) async fn release_stopped(services: &workers::config::Services) -> Result<()> {
    let released = workers::transport::dbqueue::release_stopped(&services.db).await?;
    if released > 0 {
        tracing::info!(released, "put back the jobs a stopped process left running");
    }
    Ok(())
}

async fn serve(settings: Settings, listen: SocketAddr) -> Result<()> {
    let services = connect(&settings, "clearway-serve").await?;
    let config = IntakeConfig {
        auth: AuthConfig::from_env().await?,
        rate: RateConfig::from_env()?,
    };
    let listener = bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "intake listening");
    run(listener, services, config, false, false, shutdown_signal()).await
}

async fn work(settings: Settings) -> Result<()> {
    let worker = format!("clearway-work-{}", std::process::id());
    let services = connect(&settings, &worker).await?;
    workers::transport::run_workers(&services, shutdown_signal(), api::app::GRACE).await
}

async fn token(settings: &Settings, account: u64, scopes: &[String], ttl_s: u64) -> Result<()> {
    let secret = match std::env::var("CLEARWAY_DEV_HS256_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(s) => s.into_bytes(),
        None => {
            let path = api::dev::secret_path(&settings.data_dir);
            match api::dev::read(&path)? {
                Some(s) => s,
                None => {
                    eprintln!(
                        "note: no development secret at {} yet; created one. Only a `clearway up` \
                         with this data directory (CLEARWAY_DATA_DIR) accepts tokens made with it.",
                        path.display()
                    );
                    api::dev::load_or_create_secret(&settings.data_dir)?
                }
            }
        }
    };
    let auth = AuthConfig::from_env().await?;
    let scopes: Vec<&str> = scopes
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    let claims = dev_claims(account, &scopes, ttl_s, &auth.issuer, &auth.audience);
    eprintln!("account {account}, scopes {scopes:?}, valid {ttl_s} s");
    println!("{}", mint_hs256(&secret, &claims)?);
    Ok(())
}

async fn ops(settings: &Settings, ops: Ops) -> Result<()> {
    // On SQLite, ops read the file `up` wrote (opening it would create an
    // empty one).
    if let Some(url) = settings.database_url.strip_prefix("sqlite://") {
        let file = url.split('?').next().unwrap_or(url);
        anyhow::ensure!(
            std::path::Path::new(file).exists(),
            "no Clearway database at {file}: run `clearway ops` in the directory `clearway up` runs in, \
             or point CLEARWAY_DATA_DIR at its data directory"
        );
    }
    // Workflows and trace read the database alone; replay enqueues and
    // verify reads the stream and the archive, so they connect to all.
    let text = match ops {
        Ops::Workflows {
            state,
            stuck_after_secs,
            limit,
        } => {
            let db = workers::db::Db::connect(&settings.database_url, 2).await?;
            workers::ops::workflows(&db, state.as_deref(), stuck_after_secs, limit).await?
        }
        Ops::Trace { order_id } => {
            let db = workers::db::Db::connect(&settings.database_url, 2).await?;
            workers::ops::trace(&db, order_id).await?
        }
        Ops::Replay {
            workflow_id,
            step,
            force,
        } => {
            let step = match step.as_deref() {
                Some(s) => Some(workers::workflow::Step::parse(s).with_context(|| {
                    format!("unknown step {s:?}: use persist, settle, publish or archive")
                })?),
                None => None,
            };
            let services = connect(settings, "clearway-ops").await?;
            workers::ops::replay(&services, workflow_id, step, force).await?
        }
        Ops::Verify => {
            let services = connect(settings, "clearway-ops").await?;
            // Both checks run whatever the other finds; the error names
            // every disagreement.
            workers::ops::verify_all(&services.runtime.env, &mut std::io::stdout()).await?;
            String::new()
        }
    };
    print!("{text}");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("Failed to listen on {addr}"))
}

/// A token cancelled on ctrl-c or SIGTERM.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let sigterm = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm => {}
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}
