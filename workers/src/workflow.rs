//! The workflow definition: which steps a workflow runs, its states, and the
//! retry policy. Pure data and arithmetic; the runtime drives it.

use pipeline::{Command, Event, EventKind};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One step of a workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Orders, fills and trades into the database.
    Persist,
    /// Double-entry ledger legs and balances.
    Settle,
    /// Events to the stream.
    Publish,
    /// The final record to the archive.
    Archive,
}

impl Step {
    /// Every step, in workflow order.
    pub const ALL: [Step; 4] = [Step::Persist, Step::Settle, Step::Publish, Step::Archive];

    /// The stable lower-case name used in the database and on queues.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Persist => "persist",
            Step::Settle => "settle",
            Step::Publish => "publish",
            Step::Archive => "archive",
        }
    }

    /// Parses [`Step::as_str`].
    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The retry policy of this step. The budget (≥ 31 s of backoff over 8
    /// attempts) outlasts the 12–15 s a crashed worker's job needs to be
    /// re-enqueued: a step waiting on a predecessor stuck in a dead worker
    /// (persist of a maker order, say) must not run out of attempts first.
    pub fn retry_policy(self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            base_ms: 1_000,
            cap_ms: 16_000,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of command a workflow carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    /// A placed order.
    Order,
    /// A cancel.
    Cancel,
    /// A replace (price or quantity change).
    Replace,
    /// A deposit.
    Deposit,
    /// A withdrawal.
    Withdrawal,
}

impl WorkflowKind {
    /// The steps this kind runs, in order. Cancels and replaces move no
    /// money (holds are engine state), so they skip settlement.
    pub fn steps(self) -> &'static [Step] {
        match self {
            WorkflowKind::Order | WorkflowKind::Deposit | WorkflowKind::Withdrawal => &Step::ALL,
            WorkflowKind::Cancel | WorkflowKind::Replace => {
                &[Step::Persist, Step::Publish, Step::Archive]
            }
        }
    }

    /// The step after `step`, if any.
    pub fn next(self, step: Step) -> Option<Step> {
        let steps = self.steps();
        let i = steps.iter().position(|s| *s == step)?;
        steps.get(i + 1).copied()
    }

    /// The stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowKind::Order => "order",
            WorkflowKind::Cancel => "cancel",
            WorkflowKind::Replace => "replace",
            WorkflowKind::Deposit => "deposit",
            WorkflowKind::Withdrawal => "withdrawal",
        }
    }
}

/// A workflow's state, as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Accepted, waiting for its next step.
    Pending,
    /// A step is running.
    Running,
    /// The last attempt failed; a retry is scheduled.
    Retrying,
    /// Every step is done.
    Completed,
    /// A step failed permanently or ran out of attempts.
    Dead,
}

impl WorkflowState {
    /// The stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Pending => "pending",
            WorkflowState::Running => "running",
            WorkflowState::Retrying => "retrying",
            WorkflowState::Completed => "completed",
            WorkflowState::Dead => "dead",
        }
    }
}

/// Exponential backoff with jitter and a maximum number of attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt, in milliseconds.
    pub base_ms: u64,
    /// Upper bound of any delay, in milliseconds.
    pub cap_ms: u64,
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` after `attempt` failed
    /// ("full jitter": uniform in `[d/2, d]` where `d = base · 2^(attempt-1)`,
    /// capped). `jitter` is a random number in `0..=u16::MAX`, passed in so
    /// the arithmetic stays deterministic under test.
    pub fn backoff_ms(&self, attempt: u32, jitter: u16) -> u64 {
        let exp = attempt.saturating_sub(1).min(20);
        let d = self.base_ms.saturating_mul(1u64 << exp).min(self.cap_ms);
        d / 2 + (d / 2) * u64::from(jitter) / u64::from(u16::MAX)
    }

    /// Whether another attempt is allowed after `attempt` failed.
    pub fn allows_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

/// What a workflow carries: the accepted command, its time, and the events it
/// produced. Its id is the sequence number of its first event, so ids are
/// unique and ordered like the engine's log.
///
/// Stored (journal rows, queue messages) it leaves out what its events
/// already say: a placed order's command when its `order_accepted` event
/// holds the same order, an event's `seq` when it follows the one before
/// (the first follows `id - 1`), and an event's `ts` when it is the
/// workflow's. Reading puts them back, and reads the full form too.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowInput {
    /// The first event's sequence number.
    pub id: u64,
    /// The command's kind.
    pub kind: WorkflowKind,
    /// The command as the engine accepted it.
    pub command: Command,
    /// The engine time the command was applied at (µs since the epoch).
    pub ts: u64,
    /// The events it produced, in sequence order.
    pub events: Vec<Event>,
}

impl WorkflowInput {
    /// Builds the workflow for an accepted command; `None` when it produced
    /// no event (nothing durable changed).
    pub fn new(command: Command, ts: u64, events: Vec<Event>) -> Option<WorkflowInput> {
        let id = events.first()?.seq;
        let kind = match &command {
            Command::Place(_) => WorkflowKind::Order,
            Command::Cancel { .. } => WorkflowKind::Cancel,
            Command::Replace { .. } => WorkflowKind::Replace,
            Command::Deposit(_) => WorkflowKind::Deposit,
            Command::Withdraw(_) => WorkflowKind::Withdrawal,
        };
        Some(WorkflowInput {
            id,
            kind,
            command,
            ts,
            events,
        })
    }

    /// The sequence number of its last event (its id when it has none).
    pub fn last_seq(&self) -> u64 {
        self.events.last().map_or(self.id, |e| e.seq)
    }

    /// The order this workflow is about, if any.
    pub fn order_id(&self) -> Option<u64> {
        match &self.command {
            Command::Cancel { order_id, .. } | Command::Replace { order_id, .. } => {
                Some(order_id.0)
            }
            _ => self.events.iter().find_map(|e| match &e.kind {
                EventKind::OrderAccepted { order } => Some(order.id.0),
                _ => None,
            }),
        }
    }

    /// The account that issued the command.
    pub fn account(&self) -> u64 {
        match &self.command {
            Command::Place(o) => o.account.0,
            Command::Cancel { account, .. }
            | Command::Replace { account, .. }
            | Command::Deposit(pipeline::Transfer { account, .. })
            | Command::Withdraw(pipeline::Transfer { account, .. }) => account.0,
        }
    }

    /// The market, for orders.
    pub fn market(&self) -> Option<String> {
        match &self.command {
            Command::Place(o) => Some(o.market.to_string()),
            _ => self.events.iter().find_map(|e| match &e.kind {
                EventKind::OrderClosed { market, .. } | EventKind::OrderReplaced { market, .. } => {
                    Some(market.to_string())
                }
                _ => None,
            }),
        }
    }
}

/// The stored form of a [`WorkflowInput`] (see there): `C` and `E` are the
/// command and event kind, borrowed to write and owned to read.
#[derive(Serialize, Deserialize)]
struct Stored<C, E> {
    id: u64,
    kind: WorkflowKind,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    command: Option<C>,
    ts: u64,
    events: Vec<StoredEvent<E>>,
}

/// An event of [`Stored`].
#[derive(Serialize, Deserialize)]
struct StoredEvent<E> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<u64>,
    kind: E,
}

/// `Stored::command`'s default: a plain `#[serde(default)]` would make
/// serde ask for `C: Default`, which `Command` is not.
fn none<C>() -> Option<C> {
    None
}

/// The order a workflow's first event accepted, as it was placed.
fn placed(events: &[Event]) -> Option<pipeline::NewOrder> {
    match &events.first()?.kind {
        EventKind::OrderAccepted { order } => Some(order.as_placed()),
        _ => None,
    }
}

impl Serialize for WorkflowInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let implied =
            matches!(&self.command, Command::Place(o) if placed(&self.events).as_ref() == Some(o));
        let mut next = self.id;
        let events = self
            .events
            .iter()
            .map(|e| {
                let seq = (e.seq != next).then_some(e.seq);
                next = e.seq.wrapping_add(1);
                StoredEvent {
                    seq,
                    ts: (e.ts != self.ts).then_some(e.ts),
                    kind: &e.kind,
                }
            })
            .collect();
        Stored {
            id: self.id,
            kind: self.kind,
            command: (!implied).then_some(&self.command),
            ts: self.ts,
            events,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for WorkflowInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::<Command, EventKind>::deserialize(d)?;
        let mut next = stored.id;
        let events: Vec<Event> = stored
            .events
            .into_iter()
            .map(|e| {
                let seq = e.seq.unwrap_or(next);
                // A damaged row must not panic recovery: replay then
                // finds its events wrong and says so.
                next = seq.wrapping_add(1);
                Event {
                    seq,
                    ts: e.ts.unwrap_or(stored.ts),
                    kind: e.kind,
                }
            })
            .collect();
        let command = match stored.command {
            Some(c) => c,
            None => Command::Place(placed(&events).ok_or_else(|| {
                serde::de::Error::custom(
                    "a workflow without its command must start with order_accepted",
                )
            })?),
        };
        Ok(WorkflowInput {
            id: stored.id,
            kind: stored.kind,
            command,
            ts: stored.ts,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Workflows of a deposit, a resting sell and a buy that trades with it
    /// and closes.
    fn applied() -> Vec<WorkflowInput> {
        let mut engine = pipeline::Engine::new(crate::config::engine_config());
        let commands = [
            json!({"deposit": {"account": 1002, "asset": "USD", "amount": "100000"}}),
            json!({"deposit": {"account": 1003, "asset": "BTC", "amount": "2"}}),
            json!({"place": {"account": 1003, "client_order_id": "s-1", "market": "BTC-USD", "side": "sell",
                "order_type": "limit", "price": "50000.10", "quantity": "0.5", "time_in_force": "gtc", "post_only": false}}),
            json!({"place": {"account": 1002, "client_order_id": null, "market": "BTC-USD", "side": "buy",
                "order_type": "limit", "price": "50001", "quantity": "0.25", "time_in_force": "ioc", "post_only": false}}),
        ];
        commands
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let c: Command = serde_json::from_value(c).unwrap();
                let ts = 1_764_000_000_000_000 + i as u64;
                let events = engine.apply(c.clone(), ts).unwrap();
                WorkflowInput::new(c, ts, events).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_stored_workflow_reads_back_equal_and_leaves_out_what_its_events_say() {
        let wfs = applied();
        assert_eq!(wfs[3].events.len(), 3, "accepted, trade, closed");
        for wf in &wfs {
            let text = serde_json::to_string(wf).unwrap();
            let back: WorkflowInput = serde_json::from_str(&text).unwrap();
            assert_eq!(&back, wf, "{text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            let placed = wf.kind == WorkflowKind::Order;
            assert_eq!(v.get("command").is_none(), placed, "{text}");
            for e in v["events"].as_array().unwrap() {
                assert!(e.get("seq").is_none() && e.get("ts").is_none(), "{text}");
            }
        }
    }

    #[test]
    fn the_full_form_and_what_events_do_not_imply_are_kept() {
        let mut wfs = applied();
        // A command its event does not match, a gap in seq, a later ts.
        let Command::Place(o) = &mut wfs[3].command else {
            panic!()
        };
        o.post_only = true;
        wfs[3].events[1].seq += 5;
        wfs[3].events[2].seq += 5;
        wfs[3].events[2].ts += 1;
        for wf in &wfs {
            let full = json!({
                "id": wf.id, "kind": wf.kind, "command": wf.command, "ts": wf.ts, "events": wf.events,
            });
            assert_eq!(&serde_json::from_value::<WorkflowInput>(full).unwrap(), wf);
            let text = serde_json::to_string(wf).unwrap();
            assert_eq!(&serde_json::from_str::<WorkflowInput>(&text).unwrap(), wf);
        }
        let v = serde_json::to_value(&wfs[3]).unwrap();
        assert!(v.get("command").is_some());
        assert_eq!(v["events"][1]["seq"], json!(wfs[3].events[1].seq));
        assert!(v["events"][2].get("seq").is_none());
        assert_eq!(v["events"][2]["ts"], json!(wfs[3].events[2].ts));
    }

    #[test]
    fn a_damaged_seq_reads_without_a_panic() {
        let wf = &applied()[3];
        let mut v = serde_json::to_value(wf).unwrap();
        v["events"][0]["seq"] = json!(u64::MAX);
        let back: WorkflowInput = serde_json::from_value(v).unwrap();
        assert_eq!(back.events[0].seq, u64::MAX);
        assert_eq!(back.events[1].seq, 0, "the next one wraps");
        assert_ne!(&back, wf);
    }

    #[test]
    fn a_stored_order_without_its_command_or_accepted_event_is_refused() {
        let wf = &applied()[0];
        let bad = json!({"id": wf.id, "kind": "order", "ts": wf.ts, "events": [{"kind": wf.events[0].kind}]});
        let e = serde_json::from_value::<WorkflowInput>(bad).unwrap_err();
        assert!(
            e.to_string().contains("must start with order_accepted"),
            "{e}"
        );
    }

    #[test]
    fn an_order_runs_all_four_steps_in_order() {
        let k = WorkflowKind::Order;
        assert_eq!(k.next(Step::Persist), Some(Step::Settle));
        assert_eq!(k.next(Step::Settle), Some(Step::Publish));
        assert_eq!(k.next(Step::Publish), Some(Step::Archive));
        assert_eq!(k.next(Step::Archive), None);
    }

    #[test]
    fn a_cancel_skips_settlement() {
        assert_eq!(
            WorkflowKind::Cancel.next(Step::Persist),
            Some(Step::Publish)
        );
        assert_eq!(WorkflowKind::Cancel.next(Step::Settle), None);
    }

    #[test]
    fn backoff_grows_exponentially_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_ms: 100,
            cap_ms: 1_000,
        };
        assert_eq!(p.backoff_ms(1, u16::MAX), 100);
        assert_eq!(p.backoff_ms(2, u16::MAX), 200);
        assert_eq!(p.backoff_ms(3, 0), 200);
        assert_eq!(p.backoff_ms(10, u16::MAX), 1_000);
        assert!(p.allows_retry(4));
        assert!(!p.allows_retry(5));
    }
}
