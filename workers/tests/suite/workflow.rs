//! The happy path on every transport: all four steps, exact ledger, one
//! event per id on the stream, one archived object per workflow.

use super::harness::*;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashSet};
use workers::config::TransportKind;

async fn an_order_runs_all_four_steps_and_the_books_balance(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let wfs = fund_and_trade(&mut app).await?;
    app.start_workers();
    app.wait_all_completed().await?;

    // Every workflow ran each of its steps once, successfully.
    let steps: usize = wfs.iter().map(|w| w.kind.steps().len()).sum();
    assert_eq!(
        app.count("select count(*) from workflow_attempts where outcome = 'done'")
            .await?,
        steps as i64
    );

    // Double entry: each asset's legs sum to zero.
    let mut per_asset: BTreeMap<String, Decimal> = BTreeMap::new();
    for r in app
        .db()
        .rows("select asset, amount from ledger_entries", &[])
        .await?
    {
        *per_asset.entry(r.text(0)?).or_default() += r.dec(1)?;
    }
    assert_eq!(per_asset.len(), 2);
    assert!(per_asset.values().all(|v| v.is_zero()), "{per_asset:?}");

    // Settled balances equal what the engine holds for each account.
    for account in [1u64, 1001, 1002] {
        for (asset, bal) in app.engine.balances(pipeline::AccountId(account)) {
            let rows = app
                .db()
                .rows(
                    "select total from balances where account_id = $1 and asset = $2",
                    &[
                        workers::db::Arg::I64(account as i64),
                        workers::db::Arg::Text(asset.to_string()),
                    ],
                )
                .await?;
            let settled = rows
                .first()
                .map(|r| r.dec(0))
                .transpose()?
                .unwrap_or_default();
            assert_eq!(
                settled,
                bal.available + bal.held,
                "account {account} {asset}"
            );
        }
    }

    // The fill is persisted at the resting price; the resting order is still open.
    let trade = app
        .db()
        .rows("select price, quantity from trades", &[])
        .await?;
    assert_eq!(trade.len(), 1);
    assert_eq!(trade[0].dec(0)?, dec("30000"));
    assert_eq!(trade[0].dec(1)?, dec("0.2"));
    let open = app
        .db()
        .rows(
            "select status, filled, open_quantity from orders order by order_id",
            &[],
        )
        .await?;
    assert_eq!(
        (open[0].text(0)?, open[0].dec(1)?, open[0].dec(2)?),
        ("open".into(), dec("0.2"), dec("0.3"))
    );
    assert_eq!(
        (open[1].text(0)?, open[1].dec(1)?, open[1].dec(2)?),
        ("filled".into(), dec("0.2"), dec("0"))
    );

    // The stream has every event exactly once.
    let ids = app.stream_event_ids().await?;
    let events: usize = wfs.iter().map(|w| w.events.len()).sum();
    assert_eq!(ids.len(), events);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), events);

    // One archived object per workflow, and its recorded checksum is right.
    let archived = app.archived().await?;
    assert_eq!(archived.len(), wfs.len());
    for (key, sha) in archived {
        let bytes = app
            .archive()
            .get(&key)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .expect("archived object");
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), sha);
        let record: serde_json::Value = serde_json::from_slice(&bytes)?;
        assert!(
            record["steps"].as_array().is_some_and(|s| !s.is_empty()),
            "{key} has its step history"
        );
    }
    app.stop_workers().await
}

per_transport!(an_order_runs_all_four_steps_and_the_books_balance);
