//! Test harness: a fresh database (and fresh queues, stream and bucket on
//! moto) per test, the workers running in-process, and helpers that drive the
//! engine and wait for conditions with a deadline.

use anyhow::Result;
use pipeline::{
    AccountId, Asset, Command, Engine, MarketId, NewOrder, OrderType, Price, Quantity,
    SelfTradePrevention, Side, TimeInForce,
};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workers::config::{self, Services, TransportKind};
use workers::db::Db;
use workers::sinks::ArchiveStore;
use workers::workflow::WorkflowInput;

pub fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn aws_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

pub struct App {
    pub kind: TransportKind,
    pub services: Services,
    pub engine: Engine,
    stop: CancellationToken,
    workers: Option<tokio::task::JoinHandle<Result<()>>>,
    _dir: tempfile::TempDir,
    ts: u64,
    /// Workflows submitted so far.
    submitted: i64,
}

impl App {
    pub async fn spawn(kind: TransportKind) -> Result<App> {
        let dir = tempfile::tempdir()?;
        let unique = format!("cwtest{}", uuid::Uuid::new_v4().simple());
        let settings = workers::provision::fresh(
            kind,
            &unique,
            dir.path().to_path_buf(),
            &pg_admin_url(),
            Some(&aws_endpoint()),
        )
        .await?;
        let services = config::connect(&settings, "test-worker").await?;
        let engine = Engine::new(config::engine_config());
        Ok(App {
            kind,
            services,
            engine,
            stop: CancellationToken::new(),
            workers: None,
            _dir: dir,
            ts: 1_764_000_000_000_000,
            submitted: 0,
        })
    }

    pub fn start_workers(&mut self) {
        let (services, stop) = (self.services.clone(), self.stop.clone());
        self.workers = Some(tokio::spawn(async move {
            workers::transport::run_workers(&services, stop, Duration::from_secs(5)).await
        }));
    }

    pub async fn stop_workers(&mut self) -> Result<()> {
        self.stop.cancel();
        if let Some(h) = self.workers.take() {
            h.await??;
        }
        self.stop = CancellationToken::new();
        Ok(())
    }

    /// Applies commands to the engine and group-commits the accepted ones.
    pub async fn submit(&mut self, cmds: Vec<Command>) -> Result<Vec<WorkflowInput>> {
        let mut wfs = vec![];
        for c in cmds {
            self.ts += 1_000;
            let events = self
                .engine
                .apply(c.clone(), self.ts)
                .map_err(|r| anyhow::anyhow!("rejected: {r}"))?;
            wfs.extend(WorkflowInput::new(c, self.ts, events));
        }
        self.services
            .transport
            .commit_accepted(&self.services.db, &wfs)
            .await?;
        self.submitted += wfs.len() as i64;
        Ok(wfs)
    }

    pub fn db(&self) -> &Db {
        &self.services.db
    }

    /// Polls `sql` (a single integer) until it equals `want`.
    pub async fn wait_for(&self, sql: &str, want: i64, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let got = self
                .db()
                .rows(sql, &[])
                .await?
                .first()
                .map(|r| r.i64(0))
                .transpose()?
                .unwrap_or(0);
            if got == want {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "timed out: `{sql}` is {got}, want {want} ({:?})",
                self.kind
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every submitted workflow is completed (on SQS the rows
    /// themselves appear only when persist runs).
    pub async fn wait_all_completed(&self) -> Result<()> {
        self.wait_for(
            "select count(*) from workflows where state = 'completed'",
            self.submitted,
            Duration::from_secs(60),
        )
        .await
    }

    pub async fn count(&self, sql: &str) -> Result<i64> {
        self.db().rows(sql, &[]).await?[0].i64(0)
    }

    /// Every event id on the stream (local log or Kinesis), in order.
    pub async fn stream_event_ids(&self) -> Result<Vec<String>> {
        let records = self.services.runtime.env.sink.read_all().await?;
        Ok(records.into_iter().map(|r| r.event_id).collect())
    }

    /// The archived objects' keys, with the checksums recorded for them.
    pub async fn archived(&self) -> Result<Vec<(String, String)>> {
        let rows = self
            .db()
            .rows(
                "select object_key, sha256 from archive_objects order by workflow_id",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect()
    }

    pub fn archive(&self) -> &ArchiveStore {
        &self.services.runtime.env.archive
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The outcomes of `wf`'s attempts at `step`, oldest first.
pub async fn outcomes(app: &App, wf: u64, step: &str) -> Result<Vec<String>> {
    app.db()
        .rows(
            "select outcome from workflow_attempts where workflow_id = $1 and step = $2 order by id",
            &[
                workers::db::Arg::I64(wf as i64),
                workers::db::Arg::Text(step.into()),
            ],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect()
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn deposit(account: u64, asset: &str, amount: &str) -> Command {
    Command::deposit(
        AccountId(account),
        Asset::parse(asset).unwrap(),
        dec(amount),
    )
}

pub fn limit(account: u64, side: Side, price: &str, qty: &str) -> Command {
    Command::Place(NewOrder {
        account: AccountId(account),
        client_order_id: None,
        market: MarketId::parse("BTC-USD").unwrap(),
        side,
        order_type: OrderType::Limit,
        price: Some(Price::parse(price).unwrap()),
        quantity: Quantity::parse(qty).unwrap(),
        time_in_force: TimeInForce::Gtc,
        post_only: false,
        stp: SelfTradePrevention::CancelTaker,
    })
}

/// Funds two traders and crosses a sell with a buy: 2 deposits each, a
/// resting sell and a crossing buy.
pub async fn fund_and_trade(app: &mut App) -> Result<Vec<WorkflowInput>> {
    let mut wfs = app
        .submit(vec![
            deposit(1001, "USD", "100000"),
            deposit(1002, "BTC", "10"),
            deposit(1001, "BTC", "1"),
            deposit(1002, "USD", "5000"),
        ])
        .await?;
    wfs.extend(
        app.submit(vec![limit(1002, Side::Sell, "30000.00", "0.5")])
            .await?,
    );
    wfs.extend(
        app.submit(vec![limit(1001, Side::Buy, "30100.00", "0.2")])
            .await?,
    );
    Ok(wfs)
}
