//! Recovery: the engine's books and balances are a cache of the durable
//! journal. On the database transports every accepted command is a row in
//! `workflows`, written in the same transaction as its first job, so the
//! engine is rebuilt by replaying those commands in sequence order. The
//! engine is deterministic, so the replay must reproduce the recorded events
//! exactly; a difference means the journal was altered, and start-up stops.

use crate::db::{Arg, Db};
use crate::workflow::WorkflowInput;
use anyhow::{Context, Result, bail};
use pipeline::{Engine, EngineConfig};

/// Rebuilds the engine from the journal.
pub async fn rebuild(db: &Db, config: EngineConfig) -> Result<Engine> {
    rebuild_with(db, config, |_| {}).await
}

/// Rebuilds the engine from the journal, handing every replayed workflow to
/// `on_replayed` (the intake rebuilds its client order id index this way).
pub async fn rebuild_with(
    db: &Db,
    config: EngineConfig,
    mut on_replayed: impl FnMut(&WorkflowInput),
) -> Result<Engine> {
    let mut engine = Engine::try_new(config).context("invalid engine configuration")?;
    let mut after = 0i64;
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
            let events = match engine.apply(wf.command.clone(), wf.ts) {
                Ok(ev) => ev,
                Err(reject) => bail!(
                    "workflow {after}: replay rejected its command ({reject}); the journal is inconsistent"
                ),
            };
            if events != wf.events {
                bail!(
                    "workflow {after}: replay produced different events than were accepted; the journal is inconsistent"
                );
            }
            on_replayed(&wf);
        }
    }
    Ok(engine)
}
