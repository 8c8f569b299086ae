//! Completed workflows per second, all four steps, on one transport.
//!
//! `cargo bench -p workers --bench workflows -- [sqlite|postgres|sqs] [workflows] [batch]`
//!
//! Accepts `workflows` commands through the engine (half deposits, half
//! crossing limit orders from 1,000 accounts), group-commits them `batch` at
//! a time as the intake does, then runs the workers until every workflow is
//! completed, and reports workflows/s and step executions/s. PostgreSQL from
//! `DATABASE_URL` (default loopback), SQS/Kinesis/S3 from `AWS_ENDPOINT_URL`
//! (default moto on 127.0.0.1:5055, queues created by infra/local/up.sh).

use anyhow::Result;
use pipeline::{
    AccountId, Asset, Command, Engine, MarketId, NewOrder, OrderType, Price, Quantity,
    SelfTradePrevention, Side, TimeInForce,
};
use rust_decimal::Decimal;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workers::config::{self, Settings, TransportKind};
use workers::workflow::WorkflowInput;

fn commands(n: usize) -> Vec<Command> {
    let mut out = Vec::with_capacity(n);
    let accounts = 1_000u64;
    for a in 0..accounts.min(n as u64 / 2) {
        out.push(Command::deposit(
            AccountId(1000 + a),
            Asset::parse("USD").unwrap(),
            Decimal::from(10_000_000),
        ));
        out.push(Command::deposit(
            AccountId(1000 + a),
            Asset::parse("BTC").unwrap(),
            Decimal::from(1_000),
        ));
    }
    let mut i = 0u64;
    while out.len() < n {
        let account = AccountId(1000 + (i * 7919) % accounts);
        let side = if i.is_multiple_of(2) {
            Side::Sell
        } else {
            Side::Buy
        };
        let price = 30_000 + (i % 5);
        out.push(Command::Place(NewOrder {
            account,
            client_order_id: None,
            market: MarketId::parse("BTC-USD").unwrap(),
            side,
            order_type: OrderType::Limit,
            price: Some(Price::new(Decimal::from(price)).unwrap()),
            quantity: Quantity::parse("0.01").unwrap(),
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            stp: SelfTradePrevention::CancelMaker,
        }));
        i += 1;
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let kind: TransportKind = args
        .first()
        .map(String::as_str)
        .unwrap_or("postgres")
        .parse()?;
    let n: usize = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let batch: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(500);
    let dir = tempfile::tempdir()?;
    let unique = format!("bench{}", std::process::id());
    let pg = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let database_url = match kind {
        TransportKind::Sqlite => format!("sqlite://{}", dir.path().join("bench.db").display()),
        _ => {
            let workers::db::Db::Pg(admin) = workers::db::Db::connect(&pg, 1).await? else {
                unreachable!()
            };
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "drop database if exists {unique}"
            )))
            .execute(&admin)
            .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {unique}")))
                .execute(&admin)
                .await?;
            format!(
                "{}/{unique}",
                pg.rsplit_once('/').map(|(r, _)| r).unwrap_or(&pg)
            )
        }
    };
    let aws = kind == TransportKind::Sqs;
    let settings = Settings {
        transport: kind,
        data_dir: dir.path().to_path_buf(),
        database_url,
        kinesis: aws,
        s3: aws,
        queue_prefix: std::env::var("CLEARWAY_QUEUE_PREFIX").unwrap_or_else(|_| "clearway".into()),
        stream: std::env::var("CLEARWAY_STREAM").unwrap_or_else(|_| "clearway-events".into()),
        bucket: std::env::var("CLEARWAY_BUCKET").unwrap_or_else(|_| "clearway-archive".into()),
        aws_endpoint: aws.then(|| {
            std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
        }),
        snapshots: Default::default(),
    };
    let services = config::connect(&settings, "bench").await?;
    let mut engine = Engine::new(config::engine_config());
    let mut wfs = Vec::with_capacity(n);
    let mut events = 0usize;
    for (i, c) in commands(n).into_iter().enumerate() {
        let ev = engine
            .apply(c.clone(), 1_764_000_000_000_000 + i as u64)
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        events += ev.len();
        wfs.extend(WorkflowInput::new(c, 1_764_000_000_000_000 + i as u64, ev));
    }
    let steps: usize = wfs.iter().map(|w| w.kind.steps().len()).sum();
    let t0 = Instant::now();
    for chunk in wfs.chunks(batch) {
        services
            .transport
            .commit_accepted(&services.db, chunk)
            .await?;
    }
    let enqueue = t0.elapsed();
    let stop = CancellationToken::new();
    let s2 = services.clone();
    let st = stop.clone();
    let handle = tokio::spawn(async move {
        workers::transport::run_workers(&s2, st, Duration::from_secs(10)).await
    });
    let t1 = Instant::now();
    loop {
        let done = services
            .db
            .rows(
                "select count(*) from workflows where state = 'completed'",
                &[],
            )
            .await?[0]
            .i64(0)?;
        if done as usize >= wfs.len() {
            break;
        }
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(1800),
            "only {done} of {} completed",
            wfs.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run = t1.elapsed();
    stop.cancel();
    handle.await??;
    println!(
        "transport={kind:?} workflows={} events={events} steps={steps} batch={batch}",
        wfs.len()
    );
    println!(
        "group commit: {} workflows/s ({enqueue:?})",
        per_sec(wfs.len(), enqueue)
    );
    println!(
        "workers: {} workflows/s, {} step executions/s ({run:?})",
        per_sec(wfs.len(), run),
        per_sec(steps, run)
    );
    Ok(())
}

/// `n` per second over `d`, in integers (the workspace denies float arithmetic).
fn per_sec(n: usize, d: Duration) -> u128 {
    n as u128 * 1_000_000 / d.as_micros().max(1)
}
