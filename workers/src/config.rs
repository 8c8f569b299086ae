//! Building the runtime from the environment: which transport, database,
//! stream and archive; the seeded markets.

use crate::db::Db;
use crate::runtime::{Runtime, StepEnv};
use crate::sinks::{ArchiveStore, EventSink, kinesis::KinesisSink, local, s3::S3Archive};
use crate::snapshot::SnapshotPolicy;
use crate::transport::{Transport, dbqueue::DbQueue, sqs::SqsQueue};
use anyhow::{Context, Result, bail};
use pipeline::{AccountId, Asset, EngineConfig, Market, MarketId};
use rust_decimal::Decimal;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// The account every fee is credited to (account 0 is the outside world).
pub const FEE_ACCOUNT: u64 = 1;

/// Which transport carries step jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// apalis-sqlite in the embedded database (the default).
    Sqlite,
    /// apalis-postgres.
    Postgres,
    /// SQS FIFO.
    Sqs,
}

impl TransportKind {
    /// The name `CLEARWAY_TRANSPORT` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Sqlite => "sqlite",
            TransportKind::Postgres => "postgres",
            TransportKind::Sqs => "sqs",
        }
    }
}

impl FromStr for TransportKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "sqlite" => TransportKind::Sqlite,
            "postgres" => TransportKind::Postgres,
            "sqs" => TransportKind::Sqs,
            other => bail!("unknown transport {other:?}: use sqlite, postgres or sqs"),
        })
    }
}

/// Where everything lives. Read from `CLEARWAY_*` variables by [`Settings::from_env`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// `CLEARWAY_TRANSPORT`: sqlite (default), postgres or sqs.
    pub transport: TransportKind,
    /// `CLEARWAY_DATA_DIR`: the SQLite file, event log and archive directory (default `./clearway-data`).
    pub data_dir: PathBuf,
    /// `CLEARWAY_DATABASE_URL`: default the SQLite file in the data dir, or `DATABASE_URL` for postgres and sqs.
    pub database_url: String,
    /// `CLEARWAY_EVENTS`: `local` (default unless sqs) or `kinesis`.
    pub kinesis: bool,
    /// `CLEARWAY_ARCHIVE`: `local` (default unless sqs) or `s3`.
    pub s3: bool,
    /// `CLEARWAY_QUEUE_PREFIX` (default `clearway`).
    pub queue_prefix: String,
    /// `CLEARWAY_STREAM` (default `clearway-events`).
    pub stream: String,
    /// `CLEARWAY_BUCKET` (default `clearway-archive`).
    pub bucket: String,
    /// `AWS_ENDPOINT_URL`: an emulator on loopback in dev and CI; unset in production.
    pub aws_endpoint: Option<String>,
    /// `CLEARWAY_SNAPSHOT_EVERY` (sequence numbers; 0: none) and
    /// `CLEARWAY_SNAPSHOT_REPLAY_AT_LEAST`: the intake's engine snapshots.
    pub snapshots: SnapshotPolicy,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Settings> {
        let transport: TransportKind = var("CLEARWAY_TRANSPORT")
            .as_deref()
            .unwrap_or("sqlite")
            .parse()?;
        let data_dir =
            PathBuf::from(var("CLEARWAY_DATA_DIR").unwrap_or_else(|| "clearway-data".into()));
        let database_url = match (var("CLEARWAY_DATABASE_URL"), transport) {
            (Some(u), _) => u,
            (None, TransportKind::Sqlite) => {
                format!("sqlite://{}", data_dir.join("clearway.db").display())
            }
            (None, _) => var("DATABASE_URL").context(
                "CLEARWAY_DATABASE_URL or DATABASE_URL must name the PostgreSQL database",
            )?,
        };
        let aws = transport == TransportKind::Sqs;
        let count = |name: &str, default: u64| -> Result<u64> {
            var(name).map_or(Ok(default), |v| {
                v.parse()
                    .with_context(|| format!("{name} must be a whole number, got {v:?}"))
            })
        };
        let defaults = SnapshotPolicy::default();
        let snapshots = SnapshotPolicy {
            every: count("CLEARWAY_SNAPSHOT_EVERY", defaults.every)?,
            replay_at_least: count(
                "CLEARWAY_SNAPSHOT_REPLAY_AT_LEAST",
                defaults.replay_at_least,
            )?,
            ..defaults
        };
        Ok(Settings {
            transport,
            data_dir,
            database_url,
            kinesis: var("CLEARWAY_EVENTS").map_or(aws, |v| v == "kinesis"),
            s3: var("CLEARWAY_ARCHIVE").map_or(aws, |v| v == "s3"),
            queue_prefix: var("CLEARWAY_QUEUE_PREFIX").unwrap_or_else(|| "clearway".into()),
            stream: var("CLEARWAY_STREAM").unwrap_or_else(|| "clearway-events".into()),
            bucket: var("CLEARWAY_BUCKET").unwrap_or_else(|| "clearway-archive".into()),
            aws_endpoint: var("AWS_ENDPOINT_URL"),
            snapshots,
        })
    }

    /// The local event log's path.
    pub fn event_log_path(&self) -> PathBuf {
        self.data_dir.join("events.log")
    }

    /// The local archive directory.
    pub fn archive_dir(&self) -> PathBuf {
        self.data_dir.join("archive")
    }

    /// The `CLEARWAY_*` variables (and `AWS_ENDPOINT_URL`) that make
    /// [`Settings::from_env`] read these settings back: how a parent hands
    /// its deployment to a `clearway` child process.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CLEARWAY_TRANSPORT", self.transport.as_str().to_string()),
            ("CLEARWAY_DATA_DIR", self.data_dir.display().to_string()),
            ("CLEARWAY_DATABASE_URL", self.database_url.clone()),
            (
                "CLEARWAY_EVENTS",
                if self.kinesis { "kinesis" } else { "local" }.into(),
            ),
            (
                "CLEARWAY_ARCHIVE",
                if self.s3 { "s3" } else { "local" }.into(),
            ),
            ("CLEARWAY_QUEUE_PREFIX", self.queue_prefix.clone()),
            ("CLEARWAY_STREAM", self.stream.clone()),
            ("CLEARWAY_BUCKET", self.bucket.clone()),
            ("CLEARWAY_SNAPSHOT_EVERY", self.snapshots.every.to_string()),
            (
                "CLEARWAY_SNAPSHOT_REPLAY_AT_LEAST",
                self.snapshots.replay_at_least.to_string(),
            ),
        ];
        if let Some(e) = &self.aws_endpoint {
            env.push(("AWS_ENDPOINT_URL", e.clone()));
        }
        env
    }
}

/// The two seeded markets.
pub fn default_markets() -> Vec<Market> {
    let d = |s: &str| Decimal::from_str(s).expect("a literal decimal");
    let market = |id: &str, base: &str, tick: &str, lot: &str, max: &str| Market {
        id: MarketId::parse(id).expect("a literal market id"),
        base: Asset::parse(base).expect("a literal asset"),
        quote: Asset::parse("USD").expect("a literal asset"),
        tick_size: d(tick),
        lot_size: d(lot),
        min_quantity: d(lot),
        max_quantity: d(max),
        min_notional: d("1"),
        maker_fee_bps: 10,
        taker_fee_bps: 20,
    };
    vec![
        market("BTC-USD", "BTC", "0.01", "0.0001", "1000"),
        market("ETH-USD", "ETH", "0.01", "0.001", "10000"),
    ]
}

/// The engine configuration for the seeded markets.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        markets: default_markets(),
        fee_account: AccountId(FEE_ACCOUNT),
    }
}

/// The AWS SDK configuration: region and credentials from the environment
/// as usual. With an emulator `endpoint` on loopback, the region defaults to
/// us-east-1 and the credentials to dummy ones when none are set.
pub async fn aws_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
        if var("AWS_REGION").is_none() && var("AWS_DEFAULT_REGION").is_none() {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
        let loopback =
            e.contains("://127.") || e.contains("://localhost") || e.contains("://[::1]");
        if loopback && var("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "clearway-dev",
            ));
        }
    }
    loader.load().await
}

/// Everything a process needs to accept commands and run steps.
#[derive(Clone, Debug)]
pub struct Services {
    /// Clearway's database.
    pub db: Db,
    /// The step transport.
    pub transport: Transport,
    /// The step runner.
    pub runtime: Runtime,
    /// The intake's engine snapshots.
    pub snapshots: SnapshotPolicy,
}

/// Connects to every service named in `settings` and runs migrations.
pub async fn connect(settings: &Settings, worker: &str) -> Result<Services> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("Failed to create {}", settings.data_dir.display()))?;
    let db = Db::connect(&settings.database_url, 16).await?;
    db.migrate().await?;
    let needs_aws = settings.transport == TransportKind::Sqs || settings.kinesis || settings.s3;
    let aws = if needs_aws {
        Some(aws_config(settings.aws_endpoint.as_deref()).await)
    } else {
        None
    };
    let transport = match settings.transport {
        TransportKind::Sqlite | TransportKind::Postgres => {
            let want_sqlite = settings.transport == TransportKind::Sqlite;
            if want_sqlite != db.is_sqlite() {
                bail!(
                    "transport {:?} needs a matching database, got {}",
                    settings.transport,
                    settings.database_url
                );
            }
            Transport::Db(DbQueue::setup(&db).await?)
        }
        TransportKind::Sqs => {
            let sqs = aws_sdk_sqs::Client::new(aws.as_ref().context("AWS config")?);
            Transport::Sqs(SqsQueue::connect(sqs, &settings.queue_prefix).await?)
        }
    };
    let sink = match &aws {
        Some(a) if settings.kinesis => EventSink::Kinesis(KinesisSink::new(
            aws_sdk_kinesis::Client::new(a),
            &settings.stream,
        )),
        _ => EventSink::Local(local::EventLog::open(settings.event_log_path())?),
    };
    let archive = match &aws {
        Some(a) if settings.s3 => {
            let conf = aws_sdk_s3::config::Builder::from(a)
                .force_path_style(true)
                .build();
            ArchiveStore::S3(S3Archive::new(
                aws_sdk_s3::Client::from_conf(conf),
                &settings.bucket,
            ))
        }
        _ => ArchiveStore::Dir(local::ArchiveDir::open(settings.archive_dir())?),
    };
    let env = StepEnv {
        db: db.clone(),
        sink,
        archive,
        markets: Arc::new(default_markets()),
        fee_account: FEE_ACCOUNT,
        worker: worker.to_string(),
        lease_us: 60_000_000,
        inject_failures: Default::default(),
        stall: crate::runtime::Stall::from_env()?,
    };
    Ok(Services {
        db,
        transport,
        runtime: Runtime { env },
        snapshots: settings.snapshots,
    })
}
