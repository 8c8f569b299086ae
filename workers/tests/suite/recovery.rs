//! Recovery: the engine rebuilt from the durable journal equals the live
//! one, and a journal that was altered stops recovery.

use super::harness::*;
use workers::config::{self, TransportKind};
use workers::db::Arg;

async fn the_engine_rebuilt_from_the_journal_equals_the_live_one(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    fund_and_trade(&mut app).await?;
    app.submit(vec![limit(1001, pipeline::Side::Buy, "29000.00", "0.3")])
        .await?;
    if kind == TransportKind::Sqs {
        // On SQS the journal rows are written by the persist step: drain first.
        app.start_workers();
        app.wait_all_completed().await?;
        app.stop_workers().await?;
    }
    let rebuilt = workers::recovery::rebuild(app.db(), config::engine_config()).await?;
    assert_eq!(rebuilt.snapshot(), app.engine.snapshot());
    assert_eq!(rebuilt.last_seq(), app.engine.last_seq());
    Ok(())
}
per_transport!(the_engine_rebuilt_from_the_journal_equals_the_live_one);

async fn an_altered_journal_stops_recovery(kind: TransportKind) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let wfs = app.submit(vec![deposit(1001, "USD", "100")]).await?;
    if kind == TransportKind::Sqs {
        app.start_workers();
        app.wait_all_completed().await?;
        app.stop_workers().await?;
    }
    let id = wfs[0].id as i64;
    let input = app
        .db()
        .rows("select input from workflows where id = $1", &[Arg::I64(id)])
        .await?[0]
        .text(0)?;
    let forged = input.replacen("\"100\"", "\"1000000\"", 1);
    assert_ne!(input, forged, "the amount is in the journal");
    app.db()
        .exec(
            "update workflows set input = $1 where id = $2",
            &[Arg::Text(forged), Arg::I64(id)],
        )
        .await?;
    let err = workers::recovery::rebuild(app.db(), config::engine_config())
        .await
        .expect_err("recovery refuses");
    assert!(format!("{err:#}").contains("inconsistent"), "{err:#}");
    Ok(())
}
per_transport!(an_altered_journal_stops_recovery);

/// A journal missing a workflow in the middle (on SQS: a later message
/// persisted before an earlier one) is not loaded: recovery says which
/// sequence numbers are missing, and the caller waits for persist.
async fn a_journal_with_a_gap_is_not_loaded(kind: TransportKind) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let wfs = app
        .submit(vec![deposit(1001, "USD", "100"), deposit(1001, "USD", "5")])
        .await?;
    let wfs2 = app.submit(vec![deposit(1001, "USD", "7")]).await?;
    assert_ne!(kind, TransportKind::Sqs);
    app.db()
        .exec(
            "delete from workflows where id = $1",
            &[Arg::I64(wfs[1].id as i64)],
        )
        .await?;
    let err = workers::recovery::rebuild(app.db(), config::engine_config())
        .await
        .expect_err("recovery waits");
    let msg = format!("{err:#}");
    assert!(msg.contains("the journal has a gap"), "{msg}");
    assert!(
        msg.contains(&format!(
            "from sequence {} up to {}",
            wfs[1].id,
            wfs2[0].id - 1
        )),
        "{msg}"
    );
    Ok(())
}
// The database transports: on SQS the journal rows appear only once persist
// ran, and then other rows refer to them; the check itself is the same code.
mod a_journal_with_a_gap_is_not_loaded {
    use workers::config::TransportKind;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() -> anyhow::Result<()> {
        super::a_journal_with_a_gap_is_not_loaded(TransportKind::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() -> anyhow::Result<()> {
        super::a_journal_with_a_gap_is_not_loaded(TransportKind::Postgres).await
    }
}

async fn recovery_drains_the_persist_queue_before_it_loads(
    kind: TransportKind,
) -> anyhow::Result<()> {
    use std::time::Duration;
    let mut app = App::spawn(kind).await?;
    fund_and_trade(&mut app).await?;
    let services = app.services.clone();
    if kind == TransportKind::Sqs {
        // Accepted, but persist has not run: loading now would miss them.
        let err = workers::recovery::drain(&services, Duration::from_millis(500))
            .await
            .expect_err("must wait for persist");
        assert!(
            format!("{err:#}").contains("0 of 3 persist barriers passed"),
            "{err:#}"
        );
        app.start_workers();
    }
    // On SQS: returns once persist has passed a barrier in every group, so
    // every accepted workflow is in the journal (the rebuild below shows it).
    workers::recovery::drain(&services, Duration::from_secs(30)).await?;
    let rebuilt = workers::recovery::rebuild(app.db(), config::engine_config()).await?;
    assert_eq!(rebuilt.snapshot(), app.engine.snapshot());
    app.stop_workers().await
}
per_transport!(recovery_drains_the_persist_queue_before_it_loads);
