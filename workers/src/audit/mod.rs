//! The auditor's second check, after the journal's replay (`ops verify`;
//! both run whatever the other finds, see [`crate::ops::verify_all`]):
//! the records the steps wrote agree with the journal they were written
//! from, and the archive holds what its receipts say.
//!
//! For each workflow of the journal, oldest first, in pages:
//! - **ledger**: once settled, its legs are exactly those its events imply
//!   ([`settle::legs`]): same postings, accounts, assets, amounts and kinds,
//!   and none other; legs naming no workflow of the journal are reported too;
//! - **trades**: once persisted, each trade event has its row, with the
//!   event's price, quantity, amounts, orders, accounts and fees;
//! - **orders**: its events are folded into each order's row as persist
//!   writes it, with persist's own [`OrderRow`] and
//!   [`persist::order_changes`]. Once its placement is persisted an order
//!   has a row; once every workflow that changed it is persisted, each
//!   column of the row is as folded. A closed order's row is checked after
//!   its page (nothing changes it later), an open one's after the last;
//! - **stream**: once published, each of its events is on the stream (the
//!   local event log or Kinesis) as the journal has it; events of workflows
//!   the journal lacks are reported too;
//! - **archive**: the object its receipt (`archive_objects`) names exists,
//!   has the receipt's SHA-256, and holds the journal's input and the
//!   implied ledger legs; a completed workflow has a receipt.
//!
//! Then the rows no event of the journal implies: trade rows no trade
//! event has, order rows no `order_accepted` event places. Workers may run
//! meanwhile, so a row at a sequence number past the journal as read, or
//! one of a workflow journaled since among those read (on SQS, out of
//! order), is not a stray; one past the journal's end, read last, is. An
//! order row changed by a workflow past the journal as read is left alone
//! too (but not past its end), and so is every open order's after a gap in
//! the sequence numbers read.
//!
//! Then the balances: each `(account, asset)` total equals the sum of its
//! ledger legs, and every asset's legs sum to zero.
//!
//! The journal itself is checked by the replay (each workflow reproduces its
//! recorded events). An edit to a journal row that the replay reproduces
//! (a command and its event changed together) shows here, as its ledger,
//! trades or archived copy no longer agree with it.

use crate::db::{Arg, Db, Row};
use crate::runtime::StepEnv;
use crate::sinks::{ArchiveStore, EventSink};
use crate::steps::settle::{self, Leg};
use crate::workflow::{Step, WorkflowInput};
use anyhow::{Context, Result};
use futures::StreamExt;
use pipeline::{Event, EventKind, Trade};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

mod orders;
mod strays;

use orders::Orders;
use strays::{input_of, journal_end, stray_trades};

/// Workflows read at a time.
const PAGE: i64 = 500;

/// Problems named in full; past this many, only counted.
const NAMED: usize = 20;

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Workflows checked.
    pub workflows: u64,
    /// Ledger legs that matched their workflow's events.
    pub legs: u64,
    /// Trade rows that matched their events.
    pub trades: u64,
    /// Order rows that matched their events.
    pub orders: u64,
    /// Events on the stream that matched the journal's.
    pub events: u64,
    /// Archived records whose bytes, input and ledger matched.
    pub archived: u64,
    /// `(account, asset)` balances that equal their legs.
    pub balances: u64,
    /// Every problem, the first [`NAMED`] in words.
    pub problems: Vec<String>,
    /// Problems past the first [`NAMED`].
    pub unnamed: u64,
}

impl Findings {
    fn problem(&mut self, p: String) {
        if self.problems.len() < NAMED {
            self.problems.push(p);
        } else {
            self.unnamed += 1;
        }
    }

    /// Whether nothing disagreed.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A sum of decimals, kept exact: `rust_decimal` holds 28–29 digits, and a
/// sum taken in another order than the balances' own (an asset's legs over
/// every account, say) can pass that on the way and be rounded. Here the
/// digits are an `i128` at the largest scale added so far; a sum that does
/// not fit says so instead of rounding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ExactSum {
    /// The digits.
    m: i128,
    /// Digits after the point.
    scale: u32,
    /// Whether a step did not fit in an `i128`.
    overflow: bool,
}

impl ExactSum {
    fn of(d: Decimal) -> ExactSum {
        let mut s = ExactSum::default();
        s.add_exact(d.mantissa(), d.scale());
        s
    }

    fn add(&mut self, d: Decimal) {
        self.add_exact(d.mantissa(), d.scale());
    }

    fn add_exact(&mut self, m: i128, scale: u32) {
        let up = |m: i128, by: u32| 10i128.checked_pow(by).and_then(|p| m.checked_mul(p));
        let (ours, theirs, scale) = if scale > self.scale {
            (up(self.m, scale - self.scale), Some(m), scale)
        } else {
            (Some(self.m), up(m, self.scale - scale), self.scale)
        };
        match (ours, theirs) {
            (Some(a), Some(b)) if !self.overflow => match a.checked_add(b) {
                Some(sum) => (self.m, self.scale) = (sum, scale),
                None => self.overflow = true,
            },
            _ => self.overflow = true,
        }
    }

    /// Equal in value (`1.50` = `1.5`); never for an overflowed sum.
    fn same(&self, other: &ExactSum) -> bool {
        let mut diff = *self;
        diff.add_exact(-other.m, other.scale);
        !other.overflow && !diff.overflow && diff.m == 0
    }
}

impl std::fmt::Display for ExactSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.overflow {
            return f.write_str("(more than 38 digits)");
        }
        let digits = format!(
            "{:0>width$}",
            self.m.unsigned_abs(),
            width = self.scale as usize + 1
        );
        let (int, frac) = digits.split_at(digits.len() - self.scale as usize);
        let frac = frac.trim_end_matches('0');
        let sign = if self.m < 0 { "-" } else { "" };
        if frac.is_empty() {
            write!(f, "{sign}{int}")
        } else {
            write!(f, "{sign}{int}.{frac}")
        }
    }
}

/// A ledger leg as compared: (posting, leg) → (account, asset, amount, kind).
type Legs = BTreeMap<(String, i64), (u64, String, Decimal, String)>;

fn expected(legs: Vec<Leg>) -> Legs {
    legs.into_iter()
        .map(|l| {
            (
                (l.posting, l.leg),
                (
                    l.account,
                    l.asset.to_string(),
                    l.amount.normalize(),
                    l.kind.to_string(),
                ),
            )
        })
        .collect()
}

/// The first difference between two sets of legs, in words.
fn legs_differ(what: &str, found: &Legs, implied: &Legs) -> Option<String> {
    for (k, v) in implied {
        match found.get(k) {
            None => return Some(format!("{what} lacks posting {} leg {}", k.0, k.1)),
            Some(f) if f != v => {
                return Some(format!(
                    "{what} has posting {} leg {} as account {} {} {} ({}), its events imply account {} {} {} ({})",
                    k.0, k.1, f.0, f.2, f.1, f.3, v.0, v.2, v.1, v.3
                ));
            }
            Some(_) => {}
        }
    }
    found.keys().find(|k| !implied.contains_key(*k)).map(|k| {
        format!(
            "{what} has posting {} leg {}, which its events do not imply",
            k.0, k.1
        )
    })
}

/// Checks every workflow's ledger legs, trade rows, published events and
/// archived record against the journal, then the balances against the
/// ledger.
pub async fn check(env: &StepEnv) -> Result<Findings> {
    let (db, archive) = (&env.db, &env.archive);
    let (markets, fee_account) = (&env.markets[..], env.fee_account);
    let mut f = Findings::default();
    // The stream is read first: a workflow whose events it holds has its
    // journal row already, so none looks like a stray.
    let mut stream = Stream::read(&env.sink).await?;
    let mut journal_ids = HashSet::new();
    let mut unseen: Vec<(String, u64, Event)> = Vec::new();
    let mut after = -1i64;
    // Legs per (account, asset), summed from the ledger as read.
    let mut sums: HashMap<(u64, String), ExactSum> = HashMap::new();
    let mut orders = Orders::default();
    // Every trade id of the journal, for the rows no event implies.
    let mut journal_trades: Vec<u64> = Vec::new();
    // The newest sequence number read of the journal: rows past it are of
    // workflows journaled since (workers may run), not checked as strays.
    let mut read_to = 0i64;
    loop {
        let page = db
            .rows(
                "select id, input, state, step from workflows where id > $1 order by id limit $2",
                &[Arg::I64(after), Arg::I64(PAGE)],
            )
            .await?;
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            break;
        };
        let (lo, hi) = (first.i64(0)?, last.i64(0)?);
        after = hi;
        let ledger = ledger_of(db, lo, hi).await?;
        for legs in ledger.values() {
            for (account, asset, amount, _) in legs.values() {
                sums.entry((*account, asset.clone()))
                    .or_default()
                    .add(*amount);
            }
        }
        let receipts = receipts_of(db, lo, hi).await?;
        let mut wfs = Vec::with_capacity(page.len());
        for r in &page {
            let wf = input_of(r)?;
            let (state, step) = (r.text(2)?, Step::parse(&r.text(3)?));
            // Steps done: all of them when completed, else those before
            // the current one.
            let done = if state == "completed" {
                Step::ALL.len()
            } else {
                step.map_or(0, |s| Step::ALL.iter().position(|x| *x == s).unwrap_or(0))
            };
            wfs.push((wf, state, done));
        }
        let trades = trades_of(db, wfs.iter().map(|(wf, ..)| wf)).await?;
        let mut implied_legs = Vec::with_capacity(wfs.len());
        for (wf, ..) in &wfs {
            implied_legs.push(expected(
                settle::legs(wf, markets, fee_account)
                    .with_context(|| format!("{}: its legs", describe(wf)))?,
            ));
        }
        // The archived records of the page, 16 reads at a time (on S3 each
        // is a GET).
        let archived: Vec<Option<Option<String>>> =
            futures::stream::iter(wfs.iter().zip(&implied_legs))
                .map(|((wf, ..), implied)| {
                    let receipt = receipts.get(&(wf.id as i64));
                    async move {
                        match receipt {
                            Some((key, sha)) => {
                                Some(archived_differs(archive, key, sha, wf, implied).await)
                            }
                            None => None,
                        }
                    }
                })
                .buffered(16)
                .collect()
                .await;
        for (((wf, state, done), implied), archived) in wfs.iter().zip(&implied_legs).zip(archived)
        {
            f.workflows += 1;
            journal_ids.insert(wf.id);
            let name = describe(wf);
            if *done > 2 {
                for e in &wf.events {
                    match stream.check(wf.id, e) {
                        Published::Same => f.events += 1,
                        Published::Missing => unseen.push((name.clone(), wf.id, e.clone())),
                        Published::Differs(d) => f.problem(format!("{name}: {d}")),
                    }
                }
            }
            let found = ledger.get(&(wf.id as i64));
            match found {
                Some(found) => match legs_differ("its ledger", found, implied) {
                    Some(d) => f.problem(format!("{name}: {d}")),
                    None => f.legs += found.len() as u64,
                },
                None if *done > 1 && !implied.is_empty() => {
                    f.problem(format!(
                        "{name}: settled, but the ledger has none of its legs"
                    ));
                }
                None => {}
            }
            read_to = read_to.max(wf.last_seq() as i64);
            journal_trades.extend(trade_events(wf).map(|(_, t)| t.trade_id.0));
            for id in orders.fold(wf, *done > 0) {
                f.problem(format!(
                    "{name}: its events change order {id}, which no earlier workflow of the journal places (or which one closed)"
                ));
            }
            if *done > 0 {
                for (seq, t) in trade_events(wf) {
                    match trades.get(&(t.trade_id.0 as i64)) {
                        None => f.problem(format!(
                            "{name}: persisted, but trade {} has no row",
                            t.trade_id.0
                        )),
                        Some(row) => match trade_differs(row, seq, t) {
                            Some(d) => {
                                f.problem(format!("{name}: trade {}'s row {d}", t.trade_id.0));
                            }
                            None => f.trades += 1,
                        },
                    }
                }
            }
            match (receipts.get(&(wf.id as i64)), archived) {
                (Some((key, _)), Some(Some(d))) => {
                    f.problem(format!("{name}: the archived record {key} {d}"));
                }
                (Some(_), _) => f.archived += 1,
                (None, _) if state == "completed" => {
                    f.problem(format!("{name}: completed, but it has no archive receipt"));
                }
                (None, _) => {}
            }
        }
        orders.check_closed(db, &mut f).await?;
    }
    let strays = stream.workflows.difference(&journal_ids).count();
    if strays > 0 {
        f.problem(format!(
            "the stream holds events of {strays} workflows the journal does not have"
        ));
    }
    // Events published after the stream was read are looked for once more.
    if !unseen.is_empty() {
        stream = Stream::read(&env.sink).await?;
        for (name, id, e) in unseen {
            match stream.check(id, &e) {
                Published::Same => f.events += 1,
                Published::Missing => f.problem(format!(
                    "{name}: published, but event {} is not on the stream",
                    e.seq
                )),
                Published::Differs(d) => f.problem(format!("{name}: {d}")),
            }
        }
    }
    // (A count, not the legs read page by page: legs settled after their
    // page was read are not strays.)
    let strays = db
        .rows(
            "select count(*) from ledger_entries l \
             where not exists (select 1 from workflows w where w.id = l.workflow_id)",
            &[],
        )
        .await?
        .first()
        .map_or(Ok(0), |r| r.i64(0))?;
    if strays > 0 {
        f.problem(format!(
            "the ledger has {strays} legs that name no workflow of the journal"
        ));
    }
    // Rows past what was read, checked against the journal's end once read.
    let mut late = Vec::new();
    orders.check_rest(db, read_to, &mut f, &mut late).await?;
    stray_trades(db, journal_trades, read_to, &mut f, &mut late).await?;
    if !late.is_empty() {
        let end = journal_end(db).await?;
        for (what, seq) in late.into_iter().filter(|(_, seq)| *seq > end) {
            f.problem(format!(
                "{what} names sequence {seq}, past the journal's last ({end})"
            ));
        }
    }
    let mut per_asset: BTreeMap<String, ExactSum> = BTreeMap::new();
    for ((_, asset), v) in &sums {
        let total = per_asset.entry(asset.clone()).or_default();
        total.add_exact(v.m, v.scale);
        total.overflow |= v.overflow;
    }
    for (asset, total) in per_asset
        .iter()
        .filter(|(_, t)| !t.same(&ExactSum::default()))
    {
        f.problem(format!(
            "the ledger's {asset} legs sum to {total}, not zero"
        ));
    }
    let balances = db
        .rows("select account_id, asset, total from balances", &[])
        .await?;
    let mut seen = 0usize;
    for r in &balances {
        let key = (r.i64(0)? as u64, r.text(1)?);
        let mut total = ExactSum::of(r.dec(2)?);
        let mut legs = sums.get(&key).copied().unwrap_or_default();
        seen += usize::from(sums.contains_key(&key));
        if !total.same(&legs) {
            // The legs were read page by page while workers may settle:
            // read this balance again between two reads of its legs.
            (total, legs) = settled_balance(db, key.0, &key.1).await?;
        }
        if total.same(&legs) {
            f.balances += 1;
        } else {
            f.problem(format!(
                "the balance of account {} in {} is {total}, its ledger legs sum to {legs}",
                key.0, key.1
            ));
        }
    }
    if seen < sums.len() {
        f.problem(format!(
            "{} (account, asset) pairs have ledger legs but no balance row",
            sums.len() - seen
        ));
    }
    Ok(f)
}

/// One balance and the sum of its legs, read consistently: legs, balance,
/// legs again, until both reads of the legs agree (settle moves a balance
/// in the transaction that inserts its legs, so a balance read between two
/// equal reads of them is as of those legs).
async fn settled_balance(db: &Db, account: u64, asset: &str) -> Result<(ExactSum, ExactSum)> {
    let legs = || async {
        let mut sum = ExactSum::default();
        let rows = db
            .rows(
                "select amount from ledger_entries where account_id = $1 and asset = $2",
                &[Arg::I64(account as i64), Arg::Text(asset.into())],
            )
            .await?;
        for r in &rows {
            sum.add(r.dec(0)?);
        }
        anyhow::Ok((rows.len(), sum))
    };
    let mut before = legs().await?;
    // An account settling without a pause for ten reads is compared as read.
    for tries in 1.. {
        let total = db
            .rows(
                "select total from balances where account_id = $1 and asset = $2",
                &[Arg::I64(account as i64), Arg::Text(asset.into())],
            )
            .await?
            .first()
            .map_or(Ok(Decimal::ZERO), |r| r.dec(0))?;
        let after = legs().await?;
        if after == before || tries == 10 {
            return Ok((ExactSum::of(total), after.1));
        }
        before = after;
    }
    unreachable!("the loop returns")
}

/// The published events, by sequence number (a record sent twice, as a
/// crashed publish may, must say the same both times).
struct Stream {
    /// Sequence number → (workflow, event) as first read.
    events: HashMap<u64, (u64, Event)>,
    /// The workflows the stream names.
    workflows: HashSet<u64>,
    /// Sequence numbers whose records disagree with each other.
    conflicting: HashSet<u64>,
}

/// What the stream holds of one event.
enum Published {
    Same,
    Missing,
    Differs(String),
}

impl Stream {
    async fn read(sink: &EventSink) -> Result<Stream> {
        let mut s = Stream {
            events: HashMap::new(),
            workflows: HashSet::new(),
            conflicting: HashSet::new(),
        };
        for r in sink.read_all().await.context("Failed to read the stream")? {
            s.workflows.insert(r.workflow_id);
            let seq = r.event.seq;
            match s.events.get(&seq) {
                Some(first) if *first != (r.workflow_id, r.event.clone()) => {
                    s.conflicting.insert(seq);
                }
                Some(_) => {}
                None => {
                    s.events.insert(seq, (r.workflow_id, r.event));
                }
            }
        }
        Ok(s)
    }

    fn check(&self, workflow: u64, e: &Event) -> Published {
        match self.events.get(&e.seq) {
            None => Published::Missing,
            Some(_) if self.conflicting.contains(&e.seq) => Published::Differs(format!(
                "the stream holds event {} twice, with different contents",
                e.seq
            )),
            Some((w, published)) if *w != workflow || published != e => {
                Published::Differs(format!(
                    "its event {} on the stream differs from the journal's",
                    e.seq
                ))
            }
            Some(_) => Published::Same,
        }
    }
}

/// `workflow 64 (account 1003)`, `workflow 9 (order 3, account 1001)`.
fn describe(wf: &WorkflowInput) -> String {
    match wf.order_id() {
        Some(o) => format!("workflow {} (order {o}, account {})", wf.id, wf.account()),
        None => format!("workflow {} (account {})", wf.id, wf.account()),
    }
}

/// The workflow's trades, each with its event's sequence number.
fn trade_events(wf: &WorkflowInput) -> impl Iterator<Item = (u64, &Trade)> {
    wf.events.iter().filter_map(|e| match &e.kind {
        EventKind::Trade(t) => Some((e.seq, t)),
        _ => None,
    })
}

/// The ledger legs of workflows `lo..=hi`, by workflow.
async fn ledger_of(db: &Db, lo: i64, hi: i64) -> Result<HashMap<i64, Legs>> {
    let mut out: HashMap<i64, Legs> = HashMap::new();
    for r in db
        .rows(
            "select workflow_id, posting, leg, account_id, asset, amount, kind from ledger_entries \
             where workflow_id >= $1 and workflow_id <= $2",
            &[Arg::I64(lo), Arg::I64(hi)],
        )
        .await?
    {
        out.entry(r.i64(0)?).or_default().insert(
            (r.text(1)?, r.i64(2)?),
            (
                r.i64(3)? as u64,
                r.text(4)?,
                r.dec(5)?.normalize(),
                r.text(6)?,
            ),
        );
    }
    Ok(out)
}

/// The archive receipts of workflows `lo..=hi`: id → (key, SHA-256).
async fn receipts_of(db: &Db, lo: i64, hi: i64) -> Result<HashMap<i64, (String, String)>> {
    db.rows(
        "select workflow_id, object_key, sha256 from archive_objects \
         where workflow_id >= $1 and workflow_id <= $2",
        &[Arg::I64(lo), Arg::I64(hi)],
    )
    .await?
    .iter()
    .map(|r| Ok((r.i64(0)?, (r.text(1)?, r.text(2)?))))
    .collect()
}

/// The trade rows of the workflows' trade events, by trade id.
async fn trades_of<'a>(
    db: &Db,
    wfs: impl Iterator<Item = &'a WorkflowInput>,
) -> Result<HashMap<i64, Row>> {
    let ids: Vec<i64> = wfs
        .flat_map(trade_events)
        .map(|(_, t)| t.trade_id.0 as i64)
        .collect();
    let (Some(lo), Some(hi)) = (ids.iter().min(), ids.iter().max()) else {
        return Ok(HashMap::new());
    };
    db.rows(
        "select trade_id, seq, market, price, quantity, quote_amount, taker_side, \
         maker_order_id, taker_order_id, maker_account, taker_account, maker_fee, taker_fee \
         from trades where trade_id >= $1 and trade_id <= $2",
        &[Arg::I64(*lo), Arg::I64(*hi)],
    )
    .await?
    .into_iter()
    .map(|r| Ok((r.i64(0)?, r)))
    .collect()
}

/// How a trade row differs from its event, if it does.
fn trade_differs(r: &Row, seq: u64, t: &Trade) -> Option<String> {
    let dec = |i: usize| r.dec(i).ok().map(|d| d.normalize());
    let int = |i: usize| r.i64(i).ok();
    let checks: [(&str, bool); 11] = [
        ("seq", int(1) == Some(seq as i64)),
        (
            "market",
            r.text(2).ok().as_deref() == Some(t.market.as_str()),
        ),
        ("price", dec(3) == Some(t.price.value().normalize())),
        ("quantity", dec(4) == Some(t.quantity.value().normalize())),
        ("quote_amount", dec(5) == Some(t.quote_amount.normalize())),
        (
            "taker_side",
            r.text(6).ok().as_deref() == Some(t.taker_side.as_str()),
        ),
        ("maker_order_id", int(7) == Some(t.maker_order_id.0 as i64)),
        ("taker_order_id", int(8) == Some(t.taker_order_id.0 as i64)),
        ("maker_account", int(9) == Some(t.maker_account.0 as i64)),
        ("taker_account", int(10) == Some(t.taker_account.0 as i64)),
        (
            "fees",
            dec(11) == Some(t.maker_fee.normalize()) && dec(12) == Some(t.taker_fee.normalize()),
        ),
    ];
    checks
        .iter()
        .find(|(_, ok)| !ok)
        .map(|(field, _)| format!("differs from its event in {field}"))
}

/// How an archived record differs from its receipt and the journal, if it does.
async fn archived_differs(
    archive: &ArchiveStore,
    key: &str,
    sha: &str,
    wf: &WorkflowInput,
    implied: &Legs,
) -> Option<String> {
    let bytes = match archive.get(key).await {
        Ok(Some(b)) => b,
        Ok(None) => return Some("is missing".into()),
        Err(e) => return Some(format!("could not be read: {e}")),
    };
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != sha {
        return Some(format!(
            "has SHA-256 {actual}, its receipt says {sha}: it was altered"
        ));
    }
    let Ok(record) = serde_json::from_slice::<Value>(&bytes) else {
        return Some("is not JSON".into());
    };
    if serde_json::to_value(wf).ok().as_ref() != record.get("workflow") {
        return Some("holds another input than the journal's: the journal row was altered".into());
    }
    let mut archived = Legs::new();
    for l in record["ledger"].as_array().into_iter().flatten() {
        let text = |k: &str| match &l[k] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let (Some(posting), Some(leg), Some(account), Some(asset), Some(amount), Some(kind)) = (
            text("posting"),
            l["leg"].as_i64(),
            l["account_id"].as_u64(),
            text("asset"),
            text("amount").and_then(|a| a.parse::<Decimal>().ok()),
            text("kind"),
        ) else {
            return Some("has a ledger leg it cannot read".into());
        };
        archived.insert((posting, leg), (account, asset, amount.normalize(), kind));
    }
    legs_differ("its ledger copy", &archived, implied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn an_exact_sum_keeps_every_digit_past_what_a_decimal_holds() {
        // Two values a Decimal holds whose sum it must round.
        let big = d("7922816251426433759.3543950335");
        let mut s = ExactSum::of(big);
        s.add(d("0.0000000001"));
        s.add(big);
        assert_eq!(s.to_string(), "15845632502852867518.7087900671");
        s.add(-big);
        s.add(-big);
        assert_eq!(s.to_string(), "0.0000000001");
        assert!(s.same(&ExactSum::of(d("0.00000000010"))));
        assert!(!s.same(&ExactSum::default()));
        assert_eq!(ExactSum::of(d("-1.500")).to_string(), "-1.5");
        assert_eq!(ExactSum::of(d("-0.05")).to_string(), "-0.05");
        assert_eq!(ExactSum::of(d("120")).to_string(), "120");
    }

    #[test]
    fn a_sum_past_an_i128_says_so_and_equals_nothing() {
        let mut s = ExactSum::of(Decimal::MAX);
        for _ in 0..20 {
            s.add(Decimal::new(1, 28));
            s.add(Decimal::MAX);
        }
        assert!(s.overflow);
        assert!(!s.same(&s));
        assert_eq!(s.to_string(), "(more than 38 digits)");
    }
}
