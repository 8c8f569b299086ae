//! `clearway ops verify`, second part: the ledger, trade and order rows,
//! archived records and balances are checked against the journal, and each
//! way an attacker with write access to the database or the archive could
//! alter the record is named; and both parts run, whatever the other finds.

use super::harness::*;
use pipeline::{AccountId, Command, OrderId, Side};
use workers::config::TransportKind;
use workers::db::Arg;
use workers::sinks::ArchiveStore;
use workers::workflow::WorkflowInput;

/// The problems `verify_records` names, or a panic if it found none.
async fn problems(app: &App) -> String {
    let err = workers::ops::verify_records(&app.services.runtime.env)
        .await
        .expect_err("the alteration is found");
    format!("{err:#}")
}

/// [`fund_and_trade`] with every workflow completed and the workers stopped.
async fn finished_run(kind: TransportKind) -> anyhow::Result<(App, Vec<WorkflowInput>)> {
    let mut app = App::spawn(kind).await?;
    app.start_workers();
    let wfs = fund_and_trade(&mut app).await?;
    app.wait_all_completed().await?;
    app.stop_workers().await?;
    Ok((app, wfs))
}

async fn verify_finds_every_alteration_of_the_records(kind: TransportKind) -> anyhow::Result<()> {
    let (app, wfs) = finished_run(kind).await?;
    let db = app.db().clone();
    let report = workers::ops::verify_records(&app.services.runtime.env).await?;
    // 4 deposits (2 legs each) and one trade (6 legs: base, quote, fees).
    let legs = app.count("select count(*) from ledger_entries").await?;
    let events: usize = wfs.iter().map(|w| w.events.len()).sum();
    assert!(
        report.contains(&format!(
            "records: 6 workflows; {legs} ledger legs and 1 trade rows as their events imply; 2 order rows as the events of their orders leave them; {events} events on the stream as the journal has them; 6 archived records"
        )),
        "{report}"
    );
    let exec = |sql: &'static str, args: Vec<Arg>| {
        let db = db.clone();
        async move { db.exec(sql, &args).await }
    };

    // A deposit's amount raised in the journal, command and event alike:
    // the replay reproduces it, the ledger and the archived copy do not.
    let dep = wfs[1].id as i64; // 10 BTC to account 1002
    let input = app
        .db()
        .rows(
            "select input from workflows where id = $1",
            &[Arg::I64(dep)],
        )
        .await?[0]
        .text(0)?;
    assert!(input.contains("\"10\""), "{input}");
    exec(
        "update workflows set input = $2 where id = $1",
        vec![Arg::I64(dep), Arg::Text(input.replace("\"10\"", "\"11\""))],
    )
    .await?;
    workers::ops::verify(&db).await?;
    let p = problems(&app).await;
    assert!(p.contains(&format!("workflow {dep} (account 1002): its ledger has posting deposit:{dep} leg 0 as account 1002 10 BTC")), "{p}");
    assert!(p.contains("the journal row was altered"), "{p}");
    assert!(
        p.contains(&format!(
            "its event {dep} on the stream differs from the journal's"
        )),
        "{p}"
    );
    exec(
        "update workflows set input = $2 where id = $1",
        vec![Arg::I64(dep), Arg::Text(input)],
    )
    .await?;
    workers::ops::verify_records(&app.services.runtime.env).await?;

    // A ledger leg changed: it no longer matches its events, its posting no
    // longer sums to zero, and the balance no longer equals the legs.
    let amount = |sql: &'static str| exec(sql, vec![Arg::I64(dep)]);
    amount("update ledger_entries set amount = '12' where workflow_id = $1 and leg = 0").await?;
    let p = problems(&app).await;
    assert!(p.contains("its ledger has posting"), "{p}");
    assert!(
        p.contains("the ledger's BTC legs sum to 2, not zero"),
        "{p}"
    );
    assert!(
        p.contains("the balance of account 1002 in BTC is 9.8, its ledger legs sum to 11.8"),
        "{p}"
    );
    let n = amount("update ledger_entries set amount = '10' where workflow_id = $1 and leg = 0")
        .await?;
    assert_eq!(n, 1);
    let back = db
        .rows(
            "select amount from ledger_entries where workflow_id = $1 and leg = 0",
            &[Arg::I64(dep)],
        )
        .await?[0]
        .dec(0)?;
    assert_eq!(back, rust_decimal::Decimal::from(10), "restored");

    // A balance changed alone.
    let honest = db
        .rows(
            "select total from balances where account_id = 1001 and asset = 'USD'",
            &[],
        )
        .await?[0]
        .dec(0)?;
    exec(
        "update balances set total = '1000000' where account_id = 1001 and asset = 'USD'",
        vec![],
    )
    .await?;
    let p = problems(&app).await;
    assert!(
        p.contains("the balance of account 1001 in USD is 1000000"),
        "{p}"
    );
    assert_eq!(p.lines().filter(|l| l.starts_with("- ")).count(), 1, "{p}");
    exec(
        "update balances set total = $1 where account_id = 1001 and asset = 'USD'",
        vec![Arg::Dec(honest)],
    )
    .await?;
    workers::ops::verify_records(&app.services.runtime.env).await?;

    // A forged leg naming no workflow.
    exec("insert into ledger_entries (posting, leg, workflow_id, account_id, asset, amount, kind, created_at) values ('deposit:999999', 0, 999999, 1001, 'USD', 0, 'deposit', 0)", vec![]).await?;
    let p = problems(&app).await;
    assert!(
        p.contains("the ledger has 1 legs that name no workflow of the journal"),
        "{p}"
    );
    exec(
        "delete from ledger_entries where workflow_id = 999999",
        vec![],
    )
    .await?;

    // A trade's price changed in the read table clients see.
    exec("update trades set price = '1'", vec![]).await?;
    let p = problems(&app).await;
    assert!(p.contains("'s row differs from its event in price"), "{p}");
    exec("update trades set price = '30000'", vec![]).await?;

    // A published event edited on the stream (the local event log here;
    // Kinesis keeps what was put).
    let workers::sinks::EventSink::Local(log) = &app.services.runtime.env.sink else {
        unreachable!("the database transports publish to the local event log")
    };
    let path = log.path().to_path_buf();
    let text = std::fs::read_to_string(&path)?;
    assert!(text.contains("\"100000\""), "{text}");
    std::fs::write(&path, text.replacen("\"100000\"", "\"900000\"", 1))?;
    let p = problems(&app).await;
    let first = wfs[0].id;
    assert!(
        p.contains(&format!(
            "workflow {first} (account 1001): its event {first} on the stream differs"
        )),
        "{p}"
    );
    std::fs::write(&path, text)?;

    // An archived record edited, then deleted.
    let ArchiveStore::Dir(dir) = app.archive() else {
        unreachable!("the database transports archive to a directory")
    };
    let (key, _) = app.archived().await?.remove(0);
    let path = dir.root().join(&key);
    let bytes = std::fs::read(&path)?;
    std::fs::write(
        &path,
        String::from_utf8(bytes.clone())?.replacen("1001", "1009", 1),
    )?;
    let p = problems(&app).await;
    assert!(
        p.contains(&format!("the archived record {key} has SHA-256")),
        "{p}"
    );
    std::fs::remove_file(&path)?;
    let p = problems(&app).await;
    assert!(
        p.contains(&format!("the archived record {key} is missing")),
        "{p}"
    );
    std::fs::write(&path, bytes)?;

    // Its receipt removed: a completed workflow with none.
    exec(
        "delete from archive_objects where object_key = $1",
        vec![Arg::Text(key)],
    )
    .await?;
    let p = problems(&app).await;
    assert!(
        p.contains("completed, but it has no archive receipt"),
        "{p}"
    );
    Ok(())
}
per_database_transport!(verify_finds_every_alteration_of_the_records);

/// On every transport (SQS with Kinesis and S3 too), the records of a
/// finished run agree with the journal.
async fn verify_finds_the_records_of_a_run_whole(kind: TransportKind) -> anyhow::Result<()> {
    let (app, wfs) = finished_run(kind).await?;
    let report = workers::ops::verify_records(&app.services.runtime.env).await?;
    let events: usize = wfs.iter().map(|w| w.events.len()).sum();
    assert!(
        report.contains(&format!(
            "{events} events on the stream as the journal has them; 6 archived records"
        )),
        "{report}"
    );
    Ok(())
}
per_transport!(verify_finds_the_records_of_a_run_whole);

/// A trade row no trade event implies (served by the public trades
/// endpoint like any other) is named, whether its sequence number is one
/// the journal holds or past its end; while workers run, the rows they
/// write as verify reads are not.
async fn verify_finds_trade_rows_no_event_implies(kind: TransportKind) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    app.start_workers();
    fund_and_trade(&mut app).await?;
    for round in 0..4 {
        let price = format!("{}.00", 30_000 + round);
        app.submit(vec![
            limit(1002, Side::Sell, &price, "0.01"),
            limit(1001, Side::Buy, &price, "0.01"),
        ])
        .await?;
        workers::ops::verify_records(&app.services.runtime.env).await?;
    }
    app.wait_all_completed().await?;
    app.stop_workers().await?;
    let report = workers::ops::verify_records(&app.services.runtime.env).await?;
    assert!(
        report.contains("and 5 trade rows as their events imply"),
        "{report}"
    );

    let forge = |trade_id: &str, seq: &str| {
        format!(
            "insert into trades select {trade_id}, {seq}, market, 1.00, 900, quote_amount, taker_side, \
             maker_order_id, taker_order_id, maker_account, taker_account, maker_fee, taker_fee, created_at \
             from trades where trade_id = (select max(trade_id) from trades)"
        )
    };
    let db = app.db();
    let seq = db
        .rows("select seq from trades where trade_id = 5", &[])
        .await?[0]
        .i64(0)?;
    db.exec(&forge("6", "seq"), &[]).await?;
    let p = problems(&app).await;
    assert!(
        p.contains(&format!(
            "the trades table has trade 6 (sequence {seq}), which no trade event of the journal implies"
        )),
        "{p}"
    );
    assert_eq!(p.lines().filter(|l| l.starts_with("- ")).count(), 1, "{p}");
    db.exec("delete from trades where trade_id = 6", &[])
        .await?;

    let end = app.engine.last_seq();
    db.exec(&forge("7", "999999999"), &[]).await?;
    let p = problems(&app).await;
    assert!(
        p.contains(&format!(
            "trade 7's row names sequence 999999999, past the journal's last ({end})"
        )),
        "{p}"
    );
    db.exec("delete from trades where trade_id = 7", &[])
        .await?;
    workers::ops::verify_records(&app.services.runtime.env).await?;
    Ok(())
}
per_transport!(verify_finds_trade_rows_no_event_implies);

/// Each order row reads as the journal's events leave it (the orders
/// endpoint serves them): an edited, added or deleted row is named; one
/// whose newest workflow is not persisted yet is not.
async fn verify_finds_every_alteration_of_the_order_rows(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let (mut app, wfs) = finished_run(kind).await?;
    let db = app.db().clone();
    // Order 1 rests, 0.2 of its 0.5 filled; order 2 took that and is filled.
    let (sell, buy) = (wfs[4].id, wfs[5].id);
    let report = workers::ops::verify_records(&app.services.runtime.env).await?;
    assert!(
        report.contains("; 2 order rows as the events of their orders leave them; "),
        "{report}"
    );

    // The open order shown cancelled, unfilled, at another price.
    db.exec(
        "update orders set status = 'cancelled', filled = '0', price = '1' where order_id = 1",
        &[],
    )
    .await?;
    let p = problems(&app).await;
    assert!(
        p.contains(&format!(
            "order 1 (account 1002, placed by workflow {sell}): its row has price 1 (its events imply 30000), \
             status cancelled (its events imply open), filled 0 (its events imply 0.2)"
        )),
        "{p}"
    );
    db.exec(
        "update orders set status = 'open', filled = '0.2', price = '30000' where order_id = 1",
        &[],
    )
    .await?;

    // The filled order (checked once its page is read) given a client's id.
    db.exec(
        "update orders set client_order_id = 'forged' where order_id = 2",
        &[],
    )
    .await?;
    let p = problems(&app).await;
    assert!(
        p.contains(&format!(
            "order 2 (account 1001, placed by workflow {buy}): its row has client_order_id forged (its events imply null)"
        )),
        "{p}"
    );
    db.exec(
        "update orders set client_order_id = null where order_id = 2",
        &[],
    )
    .await?;
    workers::ops::verify_records(&app.services.runtime.env).await?;

    // A row no workflow places, at a sequence number the journal holds.
    db.exec(
        "insert into orders select 99, account_id, market, client_order_id, side, order_type, price, quantity, \
         time_in_force, post_only, status, filled, open_quantity, accepted_seq, last_seq, created_at, updated_at \
         from orders where order_id = 1",
        &[],
    )
    .await?;
    let p = problems(&app).await;
    assert!(
        p.contains(&format!(
            "the orders table has order 99 (accepted at sequence {sell}), which no workflow of the journal places"
        )),
        "{p}"
    );
    db.exec("delete from orders where order_id = 99", &[])
        .await?;

    // Journaled, not persisted (the workers are stopped): order 1's cancel
    // and order 3's placement leave the rows as they are, and as they must.
    app.submit(vec![
        Command::Cancel {
            account: AccountId(1002),
            order_id: OrderId(1),
        },
        limit(1001, Side::Buy, "29000.00", "0.1"),
    ])
    .await?;
    let report = workers::ops::verify_records(&app.services.runtime.env).await?;
    assert!(
        report.contains("; 1 order rows as the events of their orders leave them; "),
        "{report}"
    );

    // A persisted order's row deleted.
    db.exec("delete from orders where order_id = 2", &[])
        .await?;
    let p = problems(&app).await;
    assert!(
        p.contains(&format!(
            "order 2 (account 1001, placed by workflow {buy}): persisted, but it has no row"
        )),
        "{p}"
    );
    Ok(())
}
per_database_transport!(verify_finds_every_alteration_of_the_order_rows);

/// `ops verify` runs the journal's check and the records' whatever either
/// finds, and names every snapshot that differs or does not read.
async fn verify_names_every_disagreement_of_the_journal_and_the_records(
    kind: TransportKind,
) -> anyhow::Result<()> {
    use workers::snapshot;
    let mut app = App::spawn(kind).await?;
    app.start_workers();
    fund_and_trade(&mut app).await?;
    // Two snapshots, each with a balance raised and a checksum to match.
    let mut seqs = vec![];
    for amount in ["1", "2"] {
        app.submit(vec![deposit(1002, "USD", amount)]).await?;
        let seq = app.engine.last_seq();
        let mut forged = serde_json::json!({"engine": app.engine.snapshot(), "client_ids": []});
        forged["engine"]["balances"][0]["available"] = "99999999".into();
        let state = forged.to_string();
        snapshot::save(app.db(), seq, state.clone(), snapshot::sha256(&state), 1).await?;
        seqs.push(seq);
    }
    // And one that does not read, at the fourth deposit's sequence number.
    snapshot::save(app.db(), 4, "{}".into(), snapshot::sha256("{}"), 1).await?;
    app.wait_all_completed().await?;
    app.stop_workers().await?;
    app.db().exec("update trades set price = '1'", &[]).await?;

    let mut out = Vec::new();
    let err = workers::ops::verify_all(&app.services.runtime.env, &mut out)
        .await
        .expect_err("both checks find something");
    let err = format!("{err:#}");
    assert!(
        err.contains("the snapshot at sequence 4 is malformed: missing field"),
        "{err}"
    );
    for seq in &seqs {
        assert!(
            err.contains(&format!(
                "the snapshot at sequence {seq}: its engine state differs from the journal's replay"
            )),
            "{err}"
        );
    }
    assert!(
        err.contains("the records disagree with the journal (1 problems):"),
        "{err}"
    );
    assert!(
        err.contains("'s row differs from its event in price"),
        "{err}"
    );
    assert!(String::from_utf8(out)?.is_empty());

    // The journal's report, when it passes, comes before the records' problems.
    app.db().exec("delete from engine_snapshots", &[]).await?;
    let mut out = Vec::new();
    let err = workers::ops::verify_all(&app.services.runtime.env, &mut out)
        .await
        .expect_err("the trade differs");
    let out = String::from_utf8(out)?;
    assert!(out.starts_with("journal: 8 workflows replayed"), "{out}");
    assert!(out.contains("0 of 0 snapshots checked"), "{out}");
    assert!(
        format!("{err:#}").starts_with("the records disagree"),
        "{err:#}"
    );
    Ok(())
}
per_database_transport!(verify_names_every_disagreement_of_the_journal_and_the_records);
