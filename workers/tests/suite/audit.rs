//! `clearway ops verify`, second part: the ledger, trade rows, archived
//! records and balances are checked against the journal, and each way an
//! attacker with write access to the database or the archive could alter
//! the record is named.

use super::harness::*;
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
            "records: 6 workflows; {legs} ledger legs and 1 trade rows as their events imply; {events} events on the stream as the journal has them; 6 archived records"
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
