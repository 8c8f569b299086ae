//! The rows no event of the journal implies, and the journal as it is
//! now for rows of workflows journaled while the pages were read.

use super::Findings;
use crate::db::{Arg, Db};
use crate::workflow::WorkflowInput;
use anyhow::{Context, Result};
use pipeline::{Event, EventKind};

/// Rows read at a time.
pub(super) const ROWS: i64 = 1_000;

/// After the last page: names the trade rows no trade event of the journal
/// implies. Rows past `read_to` go to `late`.
pub(super) async fn stray_trades(
    db: &Db,
    mut journal: Vec<u64>,
    read_to: i64,
    f: &mut Findings,
    late: &mut Vec<(String, i64)>,
) -> Result<()> {
    journal.sort_unstable();
    let mut after = i64::MIN;
    loop {
        let rows = db
            .rows(
                "select trade_id, seq from trades where trade_id > $1 order by trade_id limit $2",
                &[Arg::I64(after), Arg::I64(ROWS)],
            )
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.i64(0)?;
        for r in &rows {
            let (id, seq) = (r.i64(0)?, r.i64(1)?);
            if journal.binary_search(&(id as u64)).is_ok() {
                continue;
            }
            if seq > read_to {
                late.push((format!("trade {id}'s row"), seq));
            } else if !event_at(db, seq)
                .await?
                .is_some_and(|e| matches!(e.kind, EventKind::Trade(t) if t.trade_id.0 as i64 == id))
            {
                f.problem(format!(
                    "the trades table has trade {id} (sequence {seq}), which no trade event of the journal implies"
                ));
            }
        }
    }
    Ok(())
}

/// The event at `seq` as the journal holds it now: for a row of a
/// workflow the pages did not see, journaled since among those they did
/// (on SQS, persist journals each message group's workflows on its own).
pub(super) async fn event_at(db: &Db, seq: i64) -> Result<Option<Event>> {
    // A workflow's id is its first event's sequence number.
    let rows = db
        .rows(
            "select id, input from workflows where id <= $1 order by id desc limit 1",
            &[Arg::I64(seq)],
        )
        .await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let id = r.i64(0)?;
    let wf: WorkflowInput = serde_json::from_str(&r.text(1)?)
        .with_context(|| format!("workflow {id}: its input is malformed"))?;
    Ok(wf.events.into_iter().find(|e| e.seq as i64 == seq))
}

/// The sequence number of the journal's newest event, as it is now.
pub(super) async fn journal_end(db: &Db) -> Result<i64> {
    let rows = db
        .rows(
            "select id, input from workflows order by id desc limit 1",
            &[],
        )
        .await?;
    let Some(r) = rows.first() else {
        return Ok(0);
    };
    let id = r.i64(0)?;
    let wf: WorkflowInput = serde_json::from_str(&r.text(1)?)
        .with_context(|| format!("workflow {id}: its input is malformed"))?;
    Ok(wf.events.last().map_or(wf.id, |e| e.seq) as i64)
}
