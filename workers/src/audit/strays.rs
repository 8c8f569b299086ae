//! The rows no event of the journal implies, and the journal as it is
//! now for rows of workflows journaled while the pages were read.

use super::Findings;
use crate::db::{Arg, Db, Row};
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
    let sql = "select trade_id, seq from trades where trade_id > $1 order by trade_id limit $2";
    let mut after = i64::MIN;
    loop {
        let rows = next_page(db, sql, &mut after).await?;
        if rows.is_empty() {
            break;
        }
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

/// The next [`ROWS`] rows of `sql` (which orders by its first column, an
/// id, and takes the id to read after as `$1` and the count as `$2`), and
/// `after` moved to the last one's id; none once all are read.
pub(super) async fn next_page(db: &Db, sql: &str, after: &mut i64) -> Result<Vec<Row>> {
    let rows = db.rows(sql, &[Arg::I64(*after), Arg::I64(ROWS)]).await?;
    if let Some(last) = rows.last() {
        *after = last.i64(0)?;
    }
    Ok(rows)
}

/// The workflow of a row whose first two columns are a workflow's `id`
/// and `input`.
pub(super) fn input_of(r: &Row) -> Result<WorkflowInput> {
    let id = r.i64(0)?;
    serde_json::from_str(&r.text(1)?)
        .with_context(|| format!("workflow {id}: its input is malformed"))
}

/// The newest workflow of the journal as it is now whose id (its first
/// event's sequence number) is at most `seq`.
async fn newest_from(db: &Db, seq: i64) -> Result<Option<WorkflowInput>> {
    let rows = db
        .rows(
            "select id, input from workflows where id <= $1 order by id desc limit 1",
            &[Arg::I64(seq)],
        )
        .await?;
    rows.first().map(input_of).transpose()
}

/// The event at `seq` as the journal holds it now: for a row of a
/// workflow the pages did not see, journaled since among those they did
/// (on SQS, persist journals each message group's workflows on its own).
pub(super) async fn event_at(db: &Db, seq: i64) -> Result<Option<Event>> {
    let wf = newest_from(db, seq).await?;
    Ok(wf.and_then(|wf| wf.events.into_iter().find(|e| e.seq as i64 == seq)))
}

/// The sequence number of the journal's newest event, as it is now.
pub(super) async fn journal_end(db: &Db) -> Result<i64> {
    let wf = newest_from(db, i64::MAX).await?;
    Ok(wf.map_or(0, |wf| wf.last_seq() as i64))
}
