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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
            Command::Deposit { .. } => WorkflowKind::Deposit,
            Command::Withdraw { .. } => WorkflowKind::Withdrawal,
        };
        Some(WorkflowInput {
            id,
            kind,
            command,
            ts,
            events,
        })
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
            | Command::Deposit { account, .. }
            | Command::Withdraw { account, .. } => account.0,
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

#[cfg(test)]
mod tests {
    use super::*;

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
