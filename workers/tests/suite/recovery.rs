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
            "no workflow holds sequence numbers {} to {}",
            wfs[1].id,
            wfs2[0].id - 1
        )),
        "{msg}"
    );
    Ok(())
}
// The database transports: on SQS the journal rows appear only once persist
// ran, and then other rows refer to them; the check itself is the same code.
per_database_transport!(a_journal_with_a_gap_is_not_loaded);

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

/// A snapshot plus the journal after it rebuilds the same engine as the
/// whole journal; recovery picks the newest snapshot that leaves enough of
/// the journal to replay, keeps only the newest few, and refuses one whose
/// text does not match its SHA-256.
async fn a_snapshot_and_the_journal_after_it_rebuild_the_engine(
    kind: TransportKind,
) -> anyhow::Result<()> {
    use pipeline::{Engine, EngineState, Side};
    use workers::snapshot;
    let mut app = App::spawn(kind).await?;
    let db = app.db().clone();
    fund_and_trade(&mut app).await?;
    let early = app.engine.snapshot();
    let save = |seq: u64, state: String, at: i64| {
        let db = db.clone();
        async move {
            let sum = snapshot::sha256(&state);
            snapshot::save(&db, seq, state, sum, at).await
        }
    };
    save(early.last_seq, serde_json::to_string(&early)?, 1).await?;
    app.submit(vec![limit(1001, Side::Buy, "29000.00", "0.3")])
        .await?;
    app.submit(vec![limit(1002, Side::Sell, "29000.00", "0.1")])
        .await?;
    let late = app.engine.snapshot();
    save(late.last_seq, serde_json::to_string(&late)?, 2).await?;
    app.submit(vec![deposit(1001, "USD", "1")]).await?;
    let end = app.engine.last_seq();

    // The late snapshot leaves only one workflow to replay: asked for more,
    // recovery takes the early one.
    let journal_end = end; // the deposit is one event: its id is the last sequence number
    let picked = snapshot::newest_usable(&db, journal_end - late.last_seq).await?;
    assert_eq!(picked.map(|s| s.seq), Some(late.last_seq));
    let picked = snapshot::newest_usable(&db, journal_end - late.last_seq + 1)
        .await?
        .expect("the early snapshot");
    assert_eq!(picked.seq, early.last_seq);
    assert!(
        snapshot::newest_usable(&db, journal_end - early.last_seq + 1)
            .await?
            .is_none(),
        "no snapshot leaves that much to replay"
    );

    // Restored from either snapshot, the replay of the rest equals the live
    // engine and the whole journal's replay.
    let whole = workers::recovery::rebuild(&db, config::engine_config()).await?;
    assert_eq!(whole.snapshot(), app.engine.snapshot());
    for stored in [
        picked,
        snapshot::newest_usable(&db, 0)
            .await?
            .expect("the late one"),
    ] {
        let state: EngineState = serde_json::from_str(&stored.state)?;
        let mut replayed = 0;
        let engine = Engine::from_state(config::engine_config(), state)?;
        let engine = workers::recovery::replay(&db, engine, |_, _| replayed += 1).await?;
        assert_eq!(engine.snapshot(), app.engine.snapshot());
        assert!(
            replayed > 0 && replayed < 9,
            "replayed {replayed} workflows"
        );
    }

    // Only the newest three are kept.
    for seq in 1..=3 {
        save(end + seq, "{}".into(), 3).await?;
    }
    let kept = db
        .rows("select seq from engine_snapshots order by seq", &[])
        .await?
        .iter()
        .map(|r| r.i64(0))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let end = end as i64;
    assert_eq!(kept, vec![end + 1, end + 2, end + 3]);

    // An altered snapshot is refused, not loaded.
    db.exec(
        "update engine_snapshots set state = '{\"forged\":1}' where seq = $1",
        &[Arg::I64(end + 1)],
    )
    .await?;
    db.exec(
        "delete from engine_snapshots where seq > $1",
        &[Arg::I64(end + 1)],
    )
    .await?;
    // (The journal must reach past it for it to be usable.)
    app.submit(vec![deposit(1001, "USD", "2"), deposit(1001, "USD", "3")])
        .await?;
    let err = snapshot::newest_usable(&db, 0)
        .await
        .expect_err("a snapshot that does not match its SHA-256");
    assert!(format!("{err:#}").contains("SHA-256"), "{err:#}");
    Ok(())
}
// The snapshot table is in the database whatever the transport; SQS adds
// nothing to what is checked here.
per_database_transport!(a_snapshot_and_the_journal_after_it_rebuild_the_engine);

/// `clearway ops verify`: the whole journal replays, and each stored
/// snapshot equals the replay at its sequence number; a snapshot forged
/// with a valid checksum (which recovery would load) is caught.
async fn verify_checks_the_journal_and_every_snapshot(kind: TransportKind) -> anyhow::Result<()> {
    use pipeline::{ClientOrderId, Command, Side};
    use workers::snapshot;
    let mut app = App::spawn(kind).await?;
    let db = app.db().clone();
    fund_and_trade(&mut app).await?;
    let Command::Place(mut order) = limit(1001, Side::Buy, "29000.00", "0.3") else {
        unreachable!("a place")
    };
    order.client_order_id = Some(ClientOrderId::parse("audit-1")?);
    let placed = app.submit(vec![Command::Place(order.clone())]).await?;
    let seq = app.engine.last_seq();
    let honest = serde_json::json!({
        "engine": app.engine.snapshot(),
        "client_ids": [{"order": order, "events": placed[0].events}],
    });
    let state = honest.to_string();
    snapshot::save(&db, seq, state.clone(), snapshot::sha256(&state), 1).await?;
    app.submit(vec![deposit(1002, "USD", "1")]).await?;
    let report = workers::ops::verify(&db).await?;
    assert!(
        report.contains(&format!(
            "snapshot at sequence {seq}: equals the journal's replay"
        )),
        "{report}"
    );
    assert!(report.contains("1 of 1 snapshots checked"), "{report}");

    // A balance of account 1001 raised, with a checksum that matches the forgery.
    let mut forged = honest.clone();
    forged["engine"]["balances"][0]["available"] = "99999999".into();
    let forged = forge(&db, seq, &forged).await?;
    assert_eq!(
        snapshot::newest_usable(&db, 0).await?.map(|s| s.state),
        Some(forged),
        "recovery would load it"
    );
    let err = workers::ops::verify(&db)
        .await
        .expect_err("the forgery is caught");
    assert!(
        format!("{err:#}").contains("engine state differs"),
        "{err:#}"
    );

    // A client order id whose retry would be answered with no events.
    let mut forged = honest.clone();
    forged["client_ids"][0]["events"] = serde_json::json!([]);
    forge(&db, seq, &forged).await?;
    let err = workers::ops::verify(&db)
        .await
        .expect_err("the forgery is caught");
    assert!(
        format!("{err:#}").contains("client order id index differs"),
        "{err:#}"
    );

    // A snapshot taken with a window holds the places within it of its
    // last command: the place, 1,000 µs before the deposit, is kept by a
    // window of 1,000 µs and forgotten by one of 999.
    forge(&db, seq, &honest).await?;
    let seq2 = app.engine.last_seq();
    let windowed = |window: u64, ids: serde_json::Value| serde_json::json!({"engine": app.engine.snapshot(), "client_ids": ids, "client_id_window_us": window});
    let kept = windowed(1_000, honest["client_ids"].clone()).to_string();
    snapshot::save(&db, seq2, kept.clone(), snapshot::sha256(&kept), 2).await?;
    let report = workers::ops::verify(&db).await?;
    assert!(report.contains("2 of 2 snapshots checked"), "{report}");
    forge(&db, seq2, &windowed(999, serde_json::json!([]))).await?;
    let report = workers::ops::verify(&db).await?;
    assert!(report.contains("2 of 2 snapshots checked"), "{report}");
    // An index that kept what its window let go is not what the intake held.
    forge(&db, seq2, &windowed(999, honest["client_ids"].clone())).await?;
    let err = workers::ops::verify(&db)
        .await
        .expect_err("the difference is caught");
    assert!(
        format!("{err:#}").contains(&format!(
            "sequence {seq2}: its client order id index differs"
        )),
        "{err:#}"
    );
    Ok(())
}
per_database_transport!(verify_checks_the_journal_and_every_snapshot);

/// Replaces the snapshot at `seq` with `state`, and its checksum with one
/// that matches: a forgery recovery cannot tell. Returns the stored text.
async fn forge(
    db: &workers::db::Db,
    seq: u64,
    state: &serde_json::Value,
) -> anyhow::Result<String> {
    let state = state.to_string();
    db.exec(
        "update engine_snapshots set state = $1, sha256 = $2 where seq = $3",
        &[
            Arg::Text(state.clone()),
            Arg::Text(workers::snapshot::sha256(&state)),
            Arg::I64(seq as i64),
        ],
    )
    .await?;
    Ok(state)
}
