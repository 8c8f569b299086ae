//! Retries with backoff, exhaustion and permanent failures: the same
//! behaviour on every transport, and nothing is dropped silently.

use super::harness::*;
use pipeline::{EventKind, MarketId};
use std::sync::atomic::Ordering;
use std::time::Duration;
use workers::config::TransportKind;
use workers::db::Arg;

async fn a_step_that_fails_twice_then_succeeds_has_three_attempts_and_one_effect(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let wf = app
        .submit(vec![deposit(1001, "USD", "250.5")])
        .await?
        .remove(0);
    app.services
        .runtime
        .env
        .inject_failures
        .store(2, Ordering::SeqCst);
    app.start_workers();
    app.wait_all_completed().await?;
    assert_eq!(
        outcomes(&app, wf.id, "persist").await?,
        ["retry", "retry", "done"]
    );
    let attempts = app
        .db()
        .rows("select attempt from workflow_attempts where workflow_id = $1 and step = 'persist' order by id", &[Arg::I64(wf.id as i64)])
        .await?;
    assert_eq!(
        attempts
            .iter()
            .map(|r| r.i64(0).unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(app.count("select count(*) from ledger_entries").await?, 2);
    let bal = app
        .db()
        .rows(
            "select total from balances where account_id = 1001 and asset = 'USD'",
            &[],
        )
        .await?;
    assert_eq!(bal[0].dec(0)?, dec("250.5"));
    app.stop_workers().await
}
per_transport!(a_step_that_fails_twice_then_succeeds_has_three_attempts_and_one_effect);

async fn a_permanent_failure_makes_the_workflow_dead_with_its_reason(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    app.submit(vec![
        deposit(1001, "USD", "100000"),
        deposit(1002, "BTC", "10"),
    ])
    .await?;
    app.submit(vec![limit(1002, pipeline::Side::Sell, "30000.00", "0.5")])
        .await?;
    app.start_workers();
    app.wait_all_completed().await?;

    // A trade naming a market settlement does not know: no retry can fix it.
    let cmd = limit(1001, pipeline::Side::Buy, "30000.00", "0.1");
    let mut events = app
        .engine
        .apply(cmd.clone(), 1_764_000_100_000_000)
        .map_err(|r| anyhow::anyhow!("{r}"))?;
    for e in &mut events {
        if let EventKind::Trade(t) = &mut e.kind {
            t.market = MarketId::parse("DOGE-USD")?;
        }
    }
    let wf =
        workers::workflow::WorkflowInput::new(cmd, 1_764_000_100_000_000, events).expect("events");
    app.services
        .transport
        .commit_accepted(app.db(), std::slice::from_ref(&wf))
        .await?;
    app.wait_for(
        &format!(
            "select count(*) from workflows where id = {} and state = 'dead'",
            wf.id
        ),
        1,
        Duration::from_secs(30),
    )
    .await?;

    assert_eq!(outcomes(&app, wf.id, "settle").await?, ["dead"]);
    let row = app
        .db()
        .rows(
            "select step, last_error from workflows where id = $1",
            &[Arg::I64(wf.id as i64)],
        )
        .await?;
    assert_eq!(row[0].text(0)?, "settle");
    assert!(
        row[0].text(1)?.contains("unknown market DOGE-USD"),
        "{:?}",
        row[0]
    );
    app.wait_for_dead_letters("settle", 1).await?;
    assert_eq!(
        app.count("select count(*) from workflows where state = 'completed'")
            .await?,
        3
    );
    app.stop_workers().await
}
per_transport!(a_permanent_failure_makes_the_workflow_dead_with_its_reason);

async fn a_step_out_of_attempts_is_dead_after_the_last_one(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let wf = app.submit(vec![deposit(1001, "USD", "7")]).await?.remove(0);
    app.services
        .runtime
        .env
        .inject_failures
        .store(u64::MAX, Ordering::SeqCst);
    app.start_workers();
    app.wait_dead(wf.id).await?;
    let max = workers::workflow::Step::Persist.retry_policy().max_attempts as usize;
    let mut want = vec!["retry"; max - 1];
    want.push("dead");
    assert_eq!(outcomes(&app, wf.id, "persist").await?, want);
    app.wait_for_dead_letters("persist", 1).await?;
    assert_eq!(app.count("select count(*) from ledger_entries").await?, 0);
    app.stop_workers().await
}
per_transport!(a_step_out_of_attempts_is_dead_after_the_last_one);

async fn a_malformed_message_is_dead_lettered_and_the_worker_keeps_going(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    app.start_workers();
    poison(
        &app,
        "persist",
        br#"{"step":"persist","workflow_ids":"not a list"}"#,
    )
    .await?;
    app.submit(vec![deposit(1001, "USD", "1")]).await?;
    app.wait_all_completed().await?;
    app.wait_for_dead_letters("persist", 1).await?;
    app.stop_workers().await
}
per_transport!(a_malformed_message_is_dead_lettered_and_the_worker_keeps_going);

/// Puts a raw message on a step's queue, as a buggy producer would.
async fn poison(app: &App, step: &str, body: &[u8]) -> anyhow::Result<()> {
    match &app.services.transport {
        workers::transport::Transport::Db(_) => {
            let id = ulid::Ulid::generate().to_string();
            let sql = if app.db().is_sqlite() {
                "insert into Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority) values ($1, $2, $3, 'Pending', 0, 25, 0, 0)"
            } else {
                "insert into apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority) values ($1, $2, $3, 'Pending', 0, 25, now(), 0)"
            };
            app.db()
                .exec(
                    sql,
                    &[
                        Arg::Bytes(body.to_vec()),
                        Arg::Text(id),
                        Arg::Text(format!("clearway.{step}")),
                    ],
                )
                .await?;
        }
        workers::transport::Transport::Sqs(q) => {
            let step = workers::workflow::Step::parse(step).expect("a step");
            q.client()
                .send_message()
                .queue_url(&q.urls(step).0)
                .message_body(String::from_utf8_lossy(body))
                .message_group_id("poison")
                .message_deduplication_id(uuid::Uuid::new_v4().to_string())
                .send()
                .await?;
        }
    }
    Ok(())
}

/// Messages in a step's dead-letter path: `Killed` job rows on the database
/// transports, messages in the DLQ (with a `reason` attribute) on SQS.
async fn dead_letters(app: &App, step: &str) -> anyhow::Result<i64> {
    match &app.services.transport {
        workers::transport::Transport::Db(_) => {
            let table = if app.db().is_sqlite() {
                "Jobs"
            } else {
                "apalis.jobs"
            };
            app.count(&format!("select count(*) from {table} where job_type = 'clearway.{step}' and status = 'Killed'")).await
        }
        workers::transport::Transport::Sqs(q) => {
            let step = workers::workflow::Step::parse(step).expect("a step");
            let out = q
                .client()
                .receive_message()
                .queue_url(&q.urls(step).1)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .message_attribute_names("All")
                .send()
                .await?;
            let msgs = out.messages();
            assert!(
                msgs.iter().all(|m| m
                    .message_attributes()
                    .is_some_and(|a| a.contains_key("reason"))),
                "every dead letter carries its reason"
            );
            Ok(msgs.len() as i64)
        }
    }
}

impl App {
    /// Waits until workflow `id` is dead (every retry with backoff spent).
    async fn wait_dead(&self, id: u64) -> anyhow::Result<()> {
        let sql = format!("select count(*) from workflows where id = {id} and state = 'dead'");
        self.wait_for(&sql, 1, Duration::from_secs(150)).await
    }

    async fn wait_for_dead_letters(&self, step: &str, want: i64) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = dead_letters(self, step).await?;
            if got == want {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "dead letters on {step}: {got}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn a_dead_workflow_redriven_by_an_operator_completes_once(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let wf = app
        .submit(vec![deposit(1001, "USD", "42")])
        .await?
        .remove(0);
    app.services
        .runtime
        .env
        .inject_failures
        .store(u64::MAX, Ordering::SeqCst);
    app.start_workers();
    app.wait_dead(wf.id).await?;
    // The cause is fixed; the operator redrives the workflow.
    app.services
        .runtime
        .env
        .inject_failures
        .store(0, Ordering::SeqCst);
    let said = workers::ops::replay(&app.services, wf.id, None, false).await?;
    assert!(
        said.contains("dead at persist -> pending at persist"),
        "{said}"
    );
    app.wait_all_completed().await?;
    assert_eq!(
        outcomes(&app, wf.id, "persist")
            .await?
            .last()
            .map(String::as_str),
        Some("done")
    );
    assert_eq!(app.count("select count(*) from ledger_entries").await?, 2);
    let bal = app
        .db()
        .rows(
            "select total from balances where account_id = 1001 and asset = 'USD'",
            &[],
        )
        .await?;
    assert_eq!(bal[0].dec(0)?, dec("42"));
    // Completed now: a second replay is refused and changes nothing.
    let refused = workers::ops::replay(&app.services, wf.id, None, false).await;
    let e = format!(
        "{:#}",
        refused.expect_err("a completed workflow is not replayed")
    );
    assert!(e.contains("is completed"), "{e}");
    let state = app
        .db()
        .rows(
            "select state from workflows where id = $1",
            &[workers::db::Arg::I64(wf.id as i64)],
        )
        .await?;
    assert_eq!(state[0].text(0)?, "completed");
    app.stop_workers().await
}
per_transport!(a_dead_workflow_redriven_by_an_operator_completes_once);
