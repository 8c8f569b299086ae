//! The order rows as the journal's events leave them: see the module
//! notes of [`super`] ("orders").

use super::Findings;
use super::strays::{ROWS, event_at, next_page};
use crate::db::{Arg, Db, Row, Val};
use crate::steps::persist::{self, ORDER_COLUMNS, OrderRow};
use crate::workflow::WorkflowInput;
use anyhow::Result;
use pipeline::EventKind;
use std::collections::HashMap;

/// The orders as the journal's events leave their rows, folded workflow by
/// workflow with persist's own [`OrderRow`] and
/// [`persist::order_changes`], so the two cannot drift apart.
#[derive(Default)]
pub(super) struct Orders {
    /// The orders that may still change, by id, each as its row should
    /// read: one [`Folded`] (a few hundred bytes) per order the journal
    /// leaves open. An order that closes is checked after its page and
    /// dropped (nothing changes it after its close), so this holds about
    /// the book's resting orders, not every order of the journal.
    open: HashMap<u64, Folded>,
    /// The orders closed in the current page.
    closing: Vec<u64>,
    /// Every order id the journal places (eight bytes each), for the rows
    /// no workflow of it places.
    placed: Vec<u64>,
    /// The sequence number after the last workflow folded.
    next: u64,
}

/// One order's row as its events imply.
struct Folded {
    /// The row.
    row: OrderRow,
    /// The workflow that placed it.
    workflow: u64,
    /// Whether its placement is persisted, so its row exists.
    placed: bool,
    /// Whether every workflow that changed it is persisted, so its row
    /// reads as `row` (one still to persist leaves it behind).
    settled: bool,
}

impl Folded {
    fn describe(&self) -> String {
        format!(
            "order {} (account {}, placed by workflow {})",
            self.row.order_id, self.row.account_id, self.workflow
        )
    }

    /// Checks its row (none, if none was read).
    fn check(&self, row: Option<&Row>, f: &mut Findings) {
        match row {
            None if self.placed => {
                f.problem(format!("{}: persisted, but it has no row", self.describe()))
            }
            Some(r) if self.settled => match order_differs(r, &self.row) {
                Some(d) => f.problem(format!("{}: its row {d}", self.describe())),
                None => f.orders += 1,
            },
            _ => {}
        }
    }
}

impl Orders {
    /// Applies `wf`'s events (`persisted`: its persist step is done) as
    /// persist does. Returns the orders they change that none of the
    /// journal's earlier events places.
    pub(super) fn fold(&mut self, wf: &WorkflowInput, persisted: bool) -> Vec<u64> {
        if self.next > 0 && wf.id > self.next {
            // Sequence numbers no workflow read holds: on SQS, workflows
            // journaled since, out of order, which may change any order
            // open now (none placed later). Their rows are not checked.
            for o in self.open.values_mut() {
                o.settled = false;
            }
        }
        self.next = wf.last_seq() + 1;
        let mut unknown = Vec::new();
        for e in &wf.events {
            if let EventKind::OrderAccepted { order } = &e.kind {
                self.placed.push(order.id.0);
                let row = OrderRow::accepted(order, e.seq as i64, e.ts as i64);
                let (workflow, placed, settled) = (wf.id, persisted, persisted);
                let folded = Folded {
                    row,
                    workflow,
                    placed,
                    settled,
                };
                self.open.insert(order.id.0, folded);
            }
            for (id, change) in persist::order_changes(e).into_iter().flatten() {
                let Some(o) = self.open.get_mut(&id) else {
                    unknown.push(id);
                    continue;
                };
                change.apply(&mut o.row);
                o.settled &= persisted;
                if o.row.status != "open" {
                    self.closing.push(id);
                }
            }
        }
        unknown
    }

    /// Checks the rows of the orders closed since the last call, and drops
    /// them.
    pub(super) async fn check_closed(&mut self, db: &Db, f: &mut Findings) -> Result<()> {
        let closed: Vec<Folded> = std::mem::take(&mut self.closing)
            .into_iter()
            .filter_map(|id| self.open.remove(&id))
            .filter(|o| o.placed)
            .collect();
        let ids: Vec<u64> = closed.iter().map(|o| o.row.order_id).collect();
        let rows = order_rows(db, &ids).await?;
        for o in &closed {
            o.check(rows.get(&o.row.order_id), f);
        }
        Ok(())
    }

    /// After the last page: checks the rows of the orders still open, and
    /// names the rows no workflow of the journal places. Rows past
    /// `read_to` go to `late`.
    pub(super) async fn check_rest(
        mut self,
        db: &Db,
        read_to: i64,
        f: &mut Findings,
        late: &mut Vec<(String, i64)>,
    ) -> Result<()> {
        self.placed.sort_unstable();
        let sql = format!(
            "select {ORDER_COLUMNS} from orders where order_id > $1 order by order_id limit $2"
        );
        let mut after = i64::MIN;
        loop {
            let rows = next_page(db, &sql, &mut after).await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let id = r.i64(0)?;
                let (accepted_seq, last_seq) = (r.i64(13)?, r.i64(14)?);
                if let Some(o) = self.open.remove(&(id as u64)) {
                    if last_seq > read_to {
                        // Changed by a workflow journaled since.
                        late.push((format!("order {id}'s row"), last_seq));
                    } else {
                        o.check(Some(r), f);
                    }
                } else if self.placed.binary_search(&(id as u64)).is_ok() {
                    // Checked when it closed.
                } else if accepted_seq > read_to {
                    late.push((format!("order {id}'s row"), accepted_seq));
                } else if !event_at(db, accepted_seq).await?.is_some_and(|e| {
                    matches!(e.kind, EventKind::OrderAccepted { order } if order.id.0 as i64 == id)
                }) {
                    f.problem(format!(
                        "the orders table has order {id} (accepted at sequence {accepted_seq}), \
                         which no workflow of the journal places"
                    ));
                }
            }
        }
        for o in self.open.values() {
            o.check(None, f);
        }
        Ok(())
    }
}

/// The rows of orders `ids`, by id.
async fn order_rows(db: &Db, ids: &[u64]) -> Result<HashMap<u64, Row>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS as usize) {
        // Integers, written in: one statement whatever the count.
        let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let sql = format!(
            "select {ORDER_COLUMNS} from orders where order_id in ({})",
            list.join(", ")
        );
        for r in db.rows(&sql, &[]).await? {
            out.insert(r.i64(0)? as u64, r);
        }
    }
    Ok(out)
}

/// How an order row differs from what its events imply, if it does: each
/// column that differs, as the row has it and as implied.
fn order_differs(r: &Row, o: &OrderRow) -> Option<String> {
    let columns = ORDER_COLUMNS.split(',').map(str::trim);
    let differ: Vec<String> = columns
        .zip(o.args())
        .enumerate()
        .filter(|(i, (_, implied))| !column_is(r, *i, implied))
        .map(|(i, (name, implied))| {
            format!(
                "{name} {} (its events imply {})",
                shown(&r.0[i]),
                shown_arg(&implied)
            )
        })
        .collect();
    (!differ.is_empty()).then(|| format!("has {}", differ.join(", ")))
}

/// Whether column `i` of `r` holds `a` (decimals by value: `0.50` = `0.5`).
fn column_is(r: &Row, i: usize, a: &Arg) -> bool {
    match a {
        Arg::I64(v) => r.i64(i).ok() == Some(*v),
        Arg::Text(v) => r.text(i).ok().as_ref() == Some(v),
        Arg::Dec(v) => r.dec(i).ok().map(|d| d.normalize()) == Some(v.normalize()),
        Arg::Bool(v) => r.bool(i).ok() == Some(*v),
        Arg::NullI64 | Arg::NullText | Arg::NullDec => r.0[i] == Val::Null,
        Arg::Bytes(_) | Arg::Array(_) => false,
    }
}

fn shown(v: &Val) -> String {
    match v {
        Val::I64(n) => n.to_string(),
        Val::Text(t) => t.clone(),
        Val::Bool(b) => b.to_string(),
        Val::Null => "null".into(),
    }
}

fn shown_arg(a: &Arg) -> String {
    match a {
        Arg::I64(n) => n.to_string(),
        Arg::Text(t) => t.clone(),
        Arg::Dec(d) => d.normalize().to_string(),
        Arg::Bool(b) => b.to_string(),
        _ => "null".into(),
    }
}
