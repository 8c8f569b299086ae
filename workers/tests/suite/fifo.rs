//! Persist messages out of order, and persist failures that must not lose or
//! dead-letter anything: a fill or a cancel of an order whose placement is
//! not persisted yet, a batch whose first transaction failed, a recovery
//! barrier that failed once.
//!
//! On SQS the order comes from a worker killed while it held two messages of
//! a market's group (both received, neither deleted), as `clearway up`
//! SIGKILLed under load does. moto 5.2.1 keeps such a message "pending"
//! after its visibility timeout has passed, until a receive finds it again:
//! a receive then skips every earlier message of its group (the group is
//! pending) and hands out the last one to come back first
//! (`moto/sqs/models.py`, `receive_message`). That is what these tests
//! rely on to put the fill before the placement, with real moto and real
//! PostgreSQL.

use super::harness::*;
use pipeline::{AccountId, Command, OrderId, Side};
use std::time::Duration;
use workers::config::TransportKind;
use workers::db::Arg;
use workers::transport::Transport;
use workers::workflow::{Step, WorkflowInput};

fn queue(app: &App) -> &workers::transport::sqs::SqsQueue {
    match &app.services.transport {
        Transport::Sqs(q) => q,
        Transport::Db(_) => panic!("an SQS test"),
    }
}

/// Funds both traders and runs the workers until that is done, so that
/// what follows is the only traffic on the persist queue.
/// A resting sell of account 1002 and its cancel, group-committed one after
/// the other (not run): (placement, cancel, order id).
async fn sell_then_cancel(app: &mut App) -> anyhow::Result<(WorkflowInput, WorkflowInput, u64)> {
    let sell = app
        .submit(vec![limit(1002, Side::Sell, "30000.00", "0.5")])
        .await?
        .remove(0);
    let order = sell.order_id().expect("an order");
    let cancel = app
        .submit(vec![Command::Cancel {
            account: AccountId(1002),
            order_id: OrderId(order),
        }])
        .await?
        .remove(0);
    Ok((sell, cancel, order))
}

/// Order `order`'s persisted row: status, filled, open quantity.
async fn order_row(app: &App, order: u64) -> anyhow::Result<workers::db::Row> {
    let mut rows = app
        .db()
        .rows(
            "select status, filled, open_quantity from orders where order_id = $1",
            &[Arg::I64(order as i64)],
        )
        .await?;
    anyhow::ensure!(rows.len() == 1, "order {order} has {} rows", rows.len());
    Ok(rows.remove(0))
}

async fn funded(kind: TransportKind) -> anyhow::Result<App> {
    let mut app = App::spawn(kind).await?;
    app.submit(vec![
        deposit(1001, "USD", "100000"),
        deposit(1002, "BTC", "10"),
    ])
    .await?;
    app.start_workers();
    app.wait_all_completed().await?;
    app.stop_workers().await?;
    // A long poll the stopped worker left behind runs on in moto for up to
    // its 1 s wait, and would take what is sent next.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    Ok(app)
}

/// What a worker killed in the middle of a batch leaves: it received the
/// persist messages of `wfs` (each its own message, in one receive, for one
/// second) and deleted none. Returns once their visibility has run out.
async fn received_by_a_killed_worker(app: &App, wfs: &[WorkflowInput]) -> anyhow::Result<()> {
    let q = queue(app);
    let out = q
        .client()
        .receive_message()
        .queue_url(&q.urls(Step::Persist).0)
        .max_number_of_messages(10)
        .visibility_timeout(1)
        .wait_time_seconds(1)
        .send()
        .await?;
    let got: Vec<Vec<u64>> = out
        .messages()
        .iter()
        .map(|m| {
            let job: workers::runtime::StepJob =
                serde_json::from_str(m.body().unwrap_or_default()).expect("a step job");
            job.workflow_ids
        })
        .collect();
    let want: Vec<Vec<u64>> = wfs.iter().map(|w| vec![w.id]).collect();
    assert_eq!(got, want, "the killed worker held every message, in order");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    Ok(())
}

/// A fill delivered before the placement it fills (moto, after a kill)
/// waits behind it and is persisted after it, within seconds. Held in
/// flight for its backoff instead, it came back first every time — moto
/// kept its group pending and the placement behind it — until its eight
/// attempts ran out and it was dead-lettered (≥ 31 s).
async fn a_fill_delivered_before_its_placement_runs_after_it(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = funded(kind).await?;
    let sell = app
        .submit(vec![limit(1002, Side::Sell, "30000.00", "0.5")])
        .await?;
    let buy = app
        .submit(vec![limit(1001, Side::Buy, "30100.00", "0.2")])
        .await?;
    received_by_a_killed_worker(&app, &[sell[0].clone(), buy[0].clone()]).await?;

    app.start_workers();
    // Well inside the eight attempts' backoff (≥ 31 s), so a fill held in
    // flight until it is dead-lettered cannot pass.
    app.wait_for("select count(*) from orders", 2, Duration::from_secs(20))
        .await?;
    app.wait_all_completed().await?;
    assert_eq!(queue(&app).dead_letters(Step::Persist).await?, 0);
    assert_eq!(
        app.count("select count(*) from workflows where state = 'dead'")
            .await?,
        0
    );
    // The fill did come first (moto delivered it ahead of the placement):
    // one attempt that waited, then the one that persisted it.
    assert_eq!(
        outcomes(&app, buy[0].id, "persist").await?,
        ["retry", "done"]
    );
    assert_eq!(outcomes(&app, sell[0].id, "persist").await?, ["done"]);
    let sold = order_row(&app, sell[0].order_id().expect("an order")).await?;
    assert_eq!(sold.text(0)?, "open");
    assert_eq!(sold.dec(1)?, dec("0.2"));
    assert_eq!(sold.dec(2)?, dec("0.3"));
    app.stop_workers().await
}
per_transport!(a_fill_delivered_before_its_placement_runs_after_it: sqs Sqs);

/// A cancel delivered before the placement it cancels is not lost: it used
/// to update no row, and the placement's insert then left the cancelled
/// order open in the orders table.
async fn a_cancel_delivered_before_its_placement_is_not_lost(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = funded(kind).await?;
    let (sell, cancel, order) = sell_then_cancel(&mut app).await?;
    received_by_a_killed_worker(&app, &[sell, cancel]).await?;

    app.start_workers();
    app.wait_all_completed().await?;
    let row = order_row(&app, order).await?;
    assert_eq!(row.text(0)?, "cancelled", "as the engine has it");
    assert_eq!(row.dec(2)?, dec("0"));
    assert_eq!(queue(&app).dead_letters(Step::Persist).await?, 0);
    app.stop_workers().await
}
per_transport!(a_cancel_delivered_before_its_placement_is_not_lost: sqs Sqs);

/// The same on the database transports, where a job deferred by a retry can
/// let a later one run first: persist refuses a cancel before its order's
/// placement (retried), and applies it after.
async fn persist_refuses_a_cancel_before_its_placement(kind: TransportKind) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    app.submit(vec![deposit(1002, "BTC", "10")]).await?;
    let (sell, cancel, order) = sell_then_cancel(&mut app).await?;
    let mut tx = app.db().begin().await?;
    let err = workers::steps::persist::run(&mut tx, &cancel)
        .await
        .expect_err("the placement is not persisted");
    assert!(err.waits_for_earlier(), "{err}");
    assert!(err.is_transient(), "{err}");
    tx.rollback().await?;

    let mut tx = app.db().begin().await?;
    for wf in [&sell, &cancel] {
        workers::steps::persist::run(&mut tx, wf)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    tx.commit().await?;
    assert_eq!(order_row(&app, order).await?.text(0)?, "cancelled");
    Ok(())
}
per_database_transport!(persist_refuses_a_cancel_before_its_placement);

/// Makes the first `insert` into `table` fail (a statement trigger counting
/// with a sequence, which a rollback does not undo); later ones pass.
/// Returns how many inserts the trigger has seen so far, as a query.
async fn fail_first_insert_into(app: &App, table: &str) -> anyhow::Result<String> {
    let seq = format!("cwtest_fail_{table}");
    app.db()
        .exec(&format!("create sequence {seq}"), &[])
        .await?;
    app.db()
        .exec(
            &format!(
                "create function {seq}() returns trigger language plpgsql as $$ \
                 begin if nextval('{seq}') = 1 then raise exception 'injected: the first insert into {table} fails'; end if; \
                 return null; end $$"
            ),
            &[],
        )
        .await?;
    app.db()
        .exec(
            &format!(
                "create trigger {seq} before insert on {table} for each statement execute function {seq}()"
            ),
            &[],
        )
        .await?;
    Ok(format!("select last_value from {seq}"))
}

/// A persist batch whose first transaction (the workflows' rows, from the
/// message) failed is split into jobs of one that keep their inputs: the
/// batch's message is deleted once they are sent, so without them the
/// accepted workflows were known nowhere and never persisted.
async fn a_split_persist_batch_keeps_its_workflows_inputs(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let seen = fail_first_insert_into(&app, "workflows").await?;
    // One group commit, one message carrying both.
    app.submit(vec![deposit(1001, "USD", "10"), deposit(1002, "BTC", "1")])
        .await?;
    app.start_workers();
    app.wait_all_completed().await?;
    assert!(
        app.count(&seen).await? >= 2,
        "the batch's insert failed once, the jobs of one inserted"
    );
    assert_eq!(queue(&app).dead_letters(Step::Persist).await?, 0);
    app.stop_workers().await
}
per_transport!(a_split_persist_batch_keeps_its_workflows_inputs: sqs Sqs);

/// A recovery barrier whose transaction fails is tried again, not
/// dead-lettered: a barrier in the persist DLQ stops every start-up.
async fn a_barrier_that_failed_once_is_retried_not_dead_lettered(
    kind: TransportKind,
) -> anyhow::Result<()> {
    let mut app = App::spawn(kind).await?;
    let seen = fail_first_insert_into(&app, "recovery_barriers").await?;
    app.start_workers();
    workers::recovery::drain(&app.services, Duration::from_secs(30)).await?;
    assert!(
        app.count(&seen).await? > 3,
        "one of the three barriers failed once"
    );
    assert_eq!(queue(&app).dead_letters(Step::Persist).await?, 0);
    app.stop_workers().await
}
per_transport!(a_barrier_that_failed_once_is_retried_not_dead_lettered: sqs Sqs);
