//! Recovery: the engine's books and balances are a cache of the durable
//! journal. On the database transports every accepted command is a row in
//! `workflows`, written in the same transaction as its first job, so the
//! engine is rebuilt by replaying those commands in sequence order. The
//! engine is deterministic, so the replay must reproduce the recorded events
//! exactly; a difference means the journal was altered, and start-up stops.

use crate::config::Services;
use crate::db::{Arg, Db};
use crate::transport::{Transport, sqs};
use crate::workflow::{Step, WorkflowInput};
use anyhow::{Context, Result, bail};
use pipeline::{Engine, EngineConfig};
use std::time::{Duration, Instant};

/// Drain before load. On the database transports every accepted command is
/// in the journal already, so there is nothing to wait for. On SQS the
/// journal rows are written by the persist step, so: send a barrier into
/// every message group of the persist queue and wait (up to `within`) until
/// persist has recorded each — FIFO order per group means everything
/// accepted before it is persisted then. A persist dead-letter queue that
/// holds anything refuses start-up: an accepted order must never be
/// silently lost.
pub async fn drain(services: &Services, within: Duration) -> Result<()> {
    let Transport::Sqs(q) = &services.transport else {
        return Ok(());
    };
    let token = ulid::Ulid::generate().to_string();
    let groups = sqs::persist_groups(&services.runtime.env.markets);
    q.send_barriers(&token, &groups).await?;
    let deadline = Instant::now() + within;
    loop {
        let dead = q.dead_letters(Step::Persist).await?;
        if dead > 0 {
            bail!(
                "the persist dead-letter queue holds {dead} message(s): accepted orders may be unpersisted. \
                 Inspect and redrive them (receive from the DLQ, send to the persist queue) before starting"
            );
        }
        let passed = services
            .db
            .rows(
                "select count(*) from recovery_barriers where token = $1",
                &[Arg::Text(token.clone())],
            )
            .await?[0]
            .i64(0)?;
        if passed == groups.len() as i64 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {} persist barriers passed after {within:?}: the persist queue is not draining — are the workers running?",
                passed,
                groups.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rebuilds the engine from the journal.
pub async fn rebuild(db: &Db, config: EngineConfig) -> Result<Engine> {
    rebuild_with(db, config, |_, _| {}).await
}

/// Rebuilds the engine from the journal, handing every replayed workflow to
/// `on_replayed` with the engine just after it (the intake rebuilds its
/// client order id index and its recently closed orders this way).
pub async fn rebuild_with(
    db: &Db,
    config: EngineConfig,
    on_replayed: impl FnMut(&WorkflowInput, &Engine),
) -> Result<Engine> {
    let engine = Engine::try_new(config).context("invalid engine configuration")?;
    replay(db, engine, on_replayed).await
}

/// Replays the journal's workflows after `engine`'s last sequence number
/// onto it (an empty engine, or one restored from a
/// [snapshot](crate::snapshot)), checking each against its recorded events,
/// as [`rebuild_with`] does.
pub async fn replay(
    db: &Db,
    mut engine: Engine,
    mut on_replayed: impl FnMut(&WorkflowInput, &Engine),
) -> Result<Engine> {
    let mut after = i64::try_from(engine.last_seq()).context("sequence number out of range")?;
    loop {
        let rows = db
            .rows(
                "select id, input from workflows where id > $1 order by id limit 5000",
                &[Arg::I64(after)],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            after = r.i64(0)?;
            let wf: WorkflowInput = serde_json::from_str(&r.text(1)?)
                .with_context(|| format!("workflow {after}: malformed input"))?;
            // A workflow's id is its first event's sequence number, and the
            // sequence has no gaps: a later id means accepted workflows that
            // are not in the journal yet (on SQS, persist writes the journal,
            // and may run a later message first). Not an alteration: the
            // caller retries once persist has caught up.
            let next = engine.last_seq() + 1;
            if wf.id > next {
                bail!(
                    "the journal has a gap: no workflow holds sequence numbers {next} to {} \
                     (accepted and not persisted yet, if persist is behind; else removed from the journal)",
                    wf.id - 1
                );
            }
            let events = match engine.apply(wf.command.clone(), wf.ts) {
                Ok(ev) => ev,
                Err(reject) => bail!(
                    "workflow {after}: replay rejected its command ({reject}); the journal is inconsistent"
                ),
            };
            if events != wf.events {
                let mut detail = format!("accepted {:?}; replayed {:?}", wf.events, events);
                detail.truncate(2_000);
                bail!(
                    "workflow {after}: replay produced different events than were accepted; the journal is inconsistent ({detail})"
                );
            }
            on_replayed(&wf, &engine);
        }
    }
    Ok(engine)
}
