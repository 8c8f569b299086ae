//! A worker stopped in the middle of a step, on each transport. `clearway
//! up` runs with `CLEARWAY_TEST_STALL`, which holds the first run of one
//! step half done: for publish and archive after the events were sent or
//! the object stored and before that is recorded; for settle with the legs
//! written and not committed. Then:
//! - SIGKILL, restart: the step runs again and its effect lands exactly once
//!   (one copy of each event id on the stream, one archived object per
//!   workflow matching its recorded checksum, a balanced ledger whose
//!   balances equal the engine's);
//! - SIGTERM: the step in flight finishes within the grace period, the
//!   process exits cleanly, and a restart completes the rest.

use super::support::{Running, start_up_with};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::{Duration, Instant};
use workers::config::{Settings, TransportKind};
use workers::db::Db;

/// A fresh deployment on `kind`: its data dir, and its settings as the
/// environment of `clearway up`.
async fn deployment(kind: TransportKind) -> (tempfile::TempDir, Settings) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("cwtest{}", uuid::Uuid::new_v4().simple());
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let aws = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".into());
    let settings =
        workers::provision::fresh(kind, &name, dir.path().join("data"), &admin, Some(&aws))
            .await
            .expect("a fresh deployment (infra/local/up.sh starts PostgreSQL and moto)");
    (dir, settings)
}

fn env_with(settings: &Settings, stall: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = settings.to_env();
    if let Some(s) = stall {
        env.push(("CLEARWAY_TEST_STALL", s.to_string()));
    }
    env
}

/// Places a resting sell and a crossing buy (one trade); both must be 202.
async fn trade(app: &Running) {
    let client = reqwest::Client::new();
    let (seller, buyer) = (app.token(1002), app.token(1001));
    for (token, side, price) in [(&seller, "sell", "30000.00"), (&buyer, "buy", "30100.00")] {
        let r = client
            .post(format!("{}/v1/orders", app.base))
            .bearer_auth(token)
            .json(&json!({"market": "BTC-USD", "side": side, "type": "limit",
                          "price": price, "quantity": "0.25"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    db.rows(sql, &[]).await.unwrap()[0].i64(0).unwrap()
}

/// Recorded attempts of `step` with `outcome`.
async fn attempts(settings: &Settings, step: &str, outcome: &str) -> i64 {
    let db = Db::connect(&settings.database_url, 1).await.unwrap();
    let rows = db
        .rows(
            "select count(*) from workflow_attempts where step = $1 and outcome = $2",
            &[
                workers::db::Arg::Text(step.into()),
                workers::db::Arg::Text(outcome.into()),
            ],
        )
        .await
        .unwrap();
    rows[0].i64(0).unwrap()
}

/// Waits until every workflow is completed.
async fn wait_completed(db: &Db, app: &Running) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open = count(
            db,
            "select count(*) from workflows where state <> 'completed'",
        )
        .await;
        let all = count(db, "select count(*) from workflows").await;
        if open == 0 && all > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{open} of {all} workflows never completed: {}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every effect exactly once, checked against the real systems.
async fn assert_effects_once(settings: &Settings, app: &Running) {
    let services = workers::config::connect(settings, "e2e-check")
        .await
        .unwrap();
    let db = &services.db;
    wait_completed(db, app).await;

    // persist: each order once; the trade once.
    assert_eq!(count(db, "select count(*) from orders").await, 2);
    assert_eq!(count(db, "select count(*) from trades").await, 1);

    // settle: a balanced ledger per asset, and balances equal the engine's.
    let mut per_asset: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
    for r in db
        .rows("select asset, amount from ledger_entries", &[])
        .await
        .unwrap()
    {
        *per_asset.entry(r.text(0).unwrap()).or_default() +=
            rust_decimal::Decimal::from_str(&r.text(1).unwrap()).unwrap();
    }
    assert!(!per_asset.is_empty());
    assert!(per_asset.values().all(|s| s.is_zero()), "{per_asset:?}");
    for account in [1001u64, 1002] {
        for (asset, b) in app.balances(&app.token(account)).await {
            let dec = |v: &Value| rust_decimal::Decimal::from_str(v.as_str().unwrap()).unwrap();
            let rows = db
                .rows(
                    "select total from balances where account_id = $1 and asset = $2",
                    &[
                        workers::db::Arg::I64(account as i64),
                        workers::db::Arg::Text(asset.clone()),
                    ],
                )
                .await
                .unwrap();
            let settled = rust_decimal::Decimal::from_str(&rows[0].text(0).unwrap()).unwrap();
            assert_eq!(
                dec(&b["available"]) + dec(&b["held"]),
                settled,
                "account {account} {asset}"
            );
        }
    }

    // publish: every event id once on the stream, and every workflow's
    // events there.
    let records = services.runtime.env.sink.read_all().await.unwrap();
    let mut ids = HashSet::new();
    for r in &records {
        assert!(ids.insert(r.event_id.clone()), "event {} twice", r.event_id);
    }
    let mut events = 0;
    for r in db.rows("select input from workflows", &[]).await.unwrap() {
        let input: Value = serde_json::from_str(&r.text(0).unwrap()).unwrap();
        events += input["events"].as_array().map_or(0, Vec::len);
    }
    assert!(events > 0);
    assert_eq!(ids.len(), events, "one record per event");

    // archive: one object per workflow, equal to its recorded checksum.
    let workflows = count(db, "select count(*) from workflows").await;
    let objects = db
        .rows("select object_key, sha256 from archive_objects", &[])
        .await
        .unwrap();
    assert_eq!(objects.len() as i64, workflows);
    for o in objects {
        let (key, sha) = (o.text(0).unwrap(), o.text(1).unwrap());
        let bytes = services
            .runtime
            .env
            .archive
            .get(&key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("object {key} is missing"));
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), sha, "{key}");
    }
}

/// Waits until persist has written both orders: the kill then lands in the
/// held step, not in persist. (A worker killed holding persist messages —
/// they come back out of order on moto — is simulated in
/// `workers/tests/suite/fifo.rs`.)
async fn wait_orders_persisted(settings: &Settings, app: &Running) {
    let db = Db::connect(&settings.database_url, 1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&db, "select count(*) from orders").await < 2 {
        assert!(
            Instant::now() < deadline,
            "orders never persisted: {}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn killed_in(kind: TransportKind, step: &str) {
    let (dir, settings) = deployment(kind).await;
    let mut app = start_up_with(dir, &env_with(&settings, Some(step))).await;
    trade(&app).await;
    app.wait_log(
        &format!("test stall: holding {step}"),
        Duration::from_secs(60),
    )
    .await;
    if step != "persist" {
        wait_orders_persisted(&settings, &app).await;
    }
    let dir = app.sigkill();
    let app = start_up_with(dir, &env_with(&settings, None)).await;
    if kind == TransportKind::Sqlite {
        // The restart holds the data directory's lock, so the held job is
        // put back at once, not after the killed worker's heartbeats lapse.
        assert!(
            app.log()
                .contains("put back the jobs a stopped process left running"),
            "{}",
            app.log()
        );
    }
    assert_effects_once(&settings, &app).await;
    // The trace shows the attempt the kill cut off (publish and archive mark
    // a workflow running before their outside effect; persist and settle
    // leave nothing, their transaction never committed).
    let interrupted = attempts(&settings, step, "interrupted").await;
    // One per workflow of the held job.
    match step {
        "publish" | "archive" => assert!(interrupted > 0, "no interrupted {step} attempt"),
        _ => assert_eq!(interrupted, 0, "interrupted {step} attempts"),
    }
}

async fn terminated_in(kind: TransportKind, step: &str) {
    let (dir, settings) = deployment(kind).await;
    let mut app = start_up_with(dir, &env_with(&settings, Some(&format!("{step}:2000")))).await;
    trade(&app).await;
    app.wait_log(
        &format!("test stall: holding {step}"),
        Duration::from_secs(60),
    )
    .await;
    let status = app.terminate().await;
    assert!(status.success(), "exit {status}: {}", app.log());
    assert!(
        app.log().contains(&format!("test stall: released {step}")),
        "the step in flight was not finished: {}",
        app.log()
    );
    // The held step was finished and recorded before the process exited.
    let done = attempts(&settings, step, "done").await;
    assert!(
        done > 0,
        "no finished {step} attempt before exit: {}",
        app.log()
    );
    let app = start_up_with(app.into_dir(), &env_with(&settings, None)).await;
    assert_effects_once(&settings, &app).await;
}

macro_rules! per_transport {
    ($name:ident, $run:ident, $step:literal, [$($kind:ident),+]) => {
        mod $name {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $kind() {
                    $run(stringify!($kind).parse().unwrap(), $step).await;
                }
            )+
        }
    };
}

per_transport!(
    a_worker_killed_after_publishing_publishes_each_event_once,
    killed_in,
    "publish",
    [sqlite, postgres, sqs]
);
per_transport!(
    a_worker_killed_after_archiving_stores_one_object_per_workflow,
    killed_in,
    "archive",
    [sqlite, postgres, sqs]
);
per_transport!(
    a_worker_killed_mid_persist_loses_no_accepted_order,
    killed_in,
    "persist",
    [postgres, sqs]
);
per_transport!(
    a_worker_killed_mid_settlement_writes_each_leg_once,
    killed_in,
    "settle",
    [postgres, sqs]
);
per_transport!(
    sigterm_mid_step_finishes_the_step_and_exits_cleanly,
    terminated_in,
    "publish",
    [sqlite, postgres, sqs]
);
