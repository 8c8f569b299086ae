//! Crash recovery: `clearway up` is SIGKILLed under load and restarted.
//! Every order that got a 202 is afterwards resting in the book or settled,
//! none twice, and balances equal what the accepted events imply.

use super::support::{Running, clearway, start_up_with};
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Eight clients place orders (two accounts, crossing half the time) until
/// the server goes away; returns every 202 answer. `accepted` counts them live.
async fn load(base: String, tokens: [String; 2], accepted: Arc<AtomicUsize>) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..8usize {
        let (client, base, tokens, accepted) = (
            client.clone(),
            base.clone(),
            tokens.clone(),
            accepted.clone(),
        );
        clients.spawn(async move {
            let mut answers = vec![];
            for i in 0.. {
                let n = c * 1_000_000 + i;
                let side = if n % 2 == 0 { "sell" } else { "buy" };
                let price = format!("{}", 50_000 + (n % 7) as i64 - 3);
                let body = json!({"market": "BTC-USD", "side": side, "type": "limit", "price": price,
                                  "quantity": "0.01", "client_order_id": format!("load-{n}")});
                let Ok(r) = client.post(format!("{base}/v1/orders")).bearer_auth(&tokens[n % 2]).json(&body).send().await else {
                    break; // the server is gone
                };
                if r.status() == 202
                    && let Ok(v) = r.json::<Value>().await
                {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    answers.push(v);
                }
            }
            answers
        });
    }
    let mut all = vec![];
    while let Some(r) = clients.join_next().await {
        all.extend(r.unwrap_or_default());
    }
    all
}

async fn wait_until_settled(app: &Running) -> sqlx::SqlitePool {
    let pool = sqlx::SqlitePool::connect(&app.database_url())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pending: i64 =
            sqlx::query_scalar("select count(*) from workflows where state <> 'completed'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if pending == 0 {
            return pool;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} workflows never completed: {}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_order_survives_a_sigkill_exactly_once() {
    // Snapshots every 50 sequence numbers, so the restart loads one and
    // replays only the journal after it (at least 20 sequence numbers).
    let snapshots = [
        ("CLEARWAY_SNAPSHOT_EVERY", "50".to_string()),
        ("CLEARWAY_SNAPSHOT_REPLAY_AT_LEAST", "20".to_string()),
    ];
    let app = start_up_with(tempfile::tempdir().unwrap(), &snapshots).await;
    let tokens = [app.token(1001), app.token(1002)];
    let base = app.base.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let loader = tokio::spawn(load(base, tokens.clone(), count.clone()));
    // Kill it while eight clients keep orders in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < 200 {
        assert!(
            Instant::now() < deadline,
            "load never got going: {}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = app.sigkill();
    let accepted = loader.await.unwrap();
    assert!(accepted.len() >= 200);

    let app = start_up_with(dir, &snapshots).await;
    let pool = wait_until_settled(&app).await;
    let client = reqwest::Client::new();
    let metrics = client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let from: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("clearway_engine_rebuild_snapshot_seq "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no snapshot gauge in {metrics}"));
    assert!(
        from > 0,
        "the restart started from a snapshot: {}",
        app.log()
    );

    // Each accepted order is known after the restart, once, and its state is
    // consistent: resting (open) or done, with the fills the trades table holds.
    let mut seen = HashSet::new();
    for order in &accepted {
        let id = order["order_id"].as_u64().expect("order id");
        assert!(seen.insert(id), "order {id} was answered twice");
        let rows = sqlx::query("select status, filled from orders where order_id = ?")
            .bind(id as i64)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "order {id} is persisted exactly once");
        let workflows: i64 = sqlx::query_scalar(
            "select count(*) from workflows where kind = 'order' and order_id = ?",
        )
        .bind(id as i64)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(workflows, 1, "order {id} has one placement workflow");
        let n: usize = order["client_order_id"]
            .as_str()
            .unwrap()
            .trim_start_matches("load-")
            .parse()
            .unwrap();
        let token = &tokens[n % 2];
        let live: Value = client
            .get(format!("{}/v1/orders/{id}", app.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(live["order_id"].as_u64(), Some(id), "{live}");
    }

    // Balances after recovery equal the settled ledger, per account and asset,
    // and the ledger is balanced per asset.
    let mut ledger: BTreeMap<String, rust_decimal_sum::Sum> = BTreeMap::new();
    for r in sqlx::query("select asset, amount from ledger_entries")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        ledger
            .entry(r.get::<String, _>(0))
            .or_default()
            .add(&r.get::<String, _>(1));
    }
    assert!(ledger.values().all(|s| s.is_zero()), "{ledger:?}");
    for (account, token) in [(1001, &tokens[0]), (1002, &tokens[1])] {
        for (asset, b) in app.balances(token).await {
            let total = rust_decimal_sum::parse(b["available"].as_str().unwrap())
                + rust_decimal_sum::parse(b["held"].as_str().unwrap());
            let settled: String =
                sqlx::query_scalar("select total from balances where account_id = ? and asset = ?")
                    .bind(account)
                    .bind(asset.as_str())
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!(
                total,
                rust_decimal_sum::parse(&settled),
                "account {account} {asset}"
            );
        }
    }

    // The auditor's check agrees: the journal replays across the kill, and
    // the ledger, trade rows, archived records and balances match it.
    let out = clearway(app.dir.path())
        .args(["ops", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("every asset's legs sum to zero"), "{text}");
}

/// Exact decimal sums for the checks above, without floats.
mod rust_decimal_sum {
    use std::str::FromStr;

    pub fn parse(s: &str) -> rust_decimal::Decimal {
        rust_decimal::Decimal::from_str(s).unwrap().normalize()
    }

    #[derive(Debug, Default)]
    pub struct Sum(rust_decimal::Decimal);

    impl Sum {
        pub fn add(&mut self, s: &str) {
            self.0 += parse(s);
        }
        pub fn is_zero(&self) -> bool {
            self.0.is_zero()
        }
    }
}
