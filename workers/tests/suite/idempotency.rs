//! Duplicate deliveries: every step delivered again after it completed, and
//! each step's effect run twice in a row, leave one effect.

use super::harness::*;
use std::collections::HashSet;
use std::time::Duration;
use workers::config::TransportKind;
use workers::runtime::StepJob;
use workers::workflow::Step;

async fn duplicate_deliveries_of_every_step_leave_one_effect(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let wfs = fund_and_trade(&mut app).await?;
    app.start_workers();
    app.wait_all_completed().await?;
    let before = (
        app.count("select count(*) from ledger_entries").await?,
        app.count("select count(*) from trades").await?,
        app.archived().await?,
        app.db()
            .rows(
                "select account_id, asset, total from balances order by account_id, asset",
                &[],
            )
            .await?,
    );
    let ids: Vec<u64> = wfs.iter().map(|w| w.id).collect();
    for step in Step::ALL {
        let mut job = StepJob::new(step, ids.clone());
        job.replay = Some("duplicate-test".into());
        app.services.transport.enqueue(app.db(), &job, 0).await?;
    }
    let dupes = (ids.len() * Step::ALL.len()) as i64;
    app.wait_for(
        "select count(*) from workflow_attempts where outcome = 'duplicate'",
        dupes,
        Duration::from_secs(30),
    )
    .await?;

    let after = (
        app.count("select count(*) from ledger_entries").await?,
        app.count("select count(*) from trades").await?,
        app.archived().await?,
        app.db()
            .rows(
                "select account_id, asset, total from balances order by account_id, asset",
                &[],
            )
            .await?,
    );
    assert_eq!(before, after);
    let stream = app.stream_event_ids().await?;
    assert_eq!(
        stream.len(),
        stream.iter().collect::<HashSet<_>>().len(),
        "one event id on the stream"
    );
    assert_eq!(
        app.count("select count(*) from workflows where state <> 'completed'")
            .await?,
        0
    );
    app.stop_workers().await
}
per_transport!(duplicate_deliveries_of_every_step_leave_one_effect);

/// The effects themselves, run twice in a row inside transactions, as a
/// crash between "effect committed" and "message deleted" would.
async fn each_step_effect_run_twice_lands_once(kind: TransportKind) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let wfs = fund_and_trade(&mut app).await?;
    app.start_workers();
    app.wait_all_completed().await?;
    app.stop_workers().await?;
    let env = app.services.runtime.env.clone();
    let snapshot = |app: &App| {
        let db = app.db().clone();
        async move {
            Ok::<_, anyhow::Error>((
                db.rows("select * from ledger_entries order by posting, leg", &[]).await?,
                db.rows("select account_id, asset, total from balances order by account_id, asset", &[]).await?,
                db.rows("select order_id, status, filled, open_quantity, last_seq from orders order by order_id", &[]).await?,
                db.rows("select * from trades order by trade_id", &[]).await?,
                db.rows("select * from archive_objects order by workflow_id", &[]).await?,
            ))
        }
    };
    let before = snapshot(&app).await?;
    for wf in &wfs {
        let mut tx = app.db().begin().await?;
        workers::steps::persist::run(&mut tx, wf)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        workers::steps::settle::run(&mut tx, wf, &env.markets, env.fee_account)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        workers::steps::archive::run(&mut tx, &env.archive, wf)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tx.commit().await?;
    }
    assert_eq!(before, snapshot(&app).await?);
    Ok(())
}
per_transport!(each_step_effect_run_twice_lands_once);
