//! The four steps. Each file has the same shape: the input (a batch of
//! workflows), the idempotency key, the effect, and what is recorded.
//! Database effects happen inside the caller's transaction, so the effect,
//! the attempt record and the hand-off to the next step commit together.

pub mod archive;
pub mod persist;
pub mod publish;
pub mod settle;

use std::fmt;

/// Why a step failed, and so what the runtime does next.
#[derive(Debug)]
pub enum StepError {
    /// Worth retrying with backoff (a timeout, a throttle, a lost connection).
    Transient(anyhow::Error),
    /// Retrying cannot help (malformed input, a broken invariant): dead-letter at once.
    Permanent(anyhow::Error),
}

impl StepError {
    /// Whether the runtime should retry.
    pub fn is_transient(&self) -> bool {
        matches!(self, StepError::Transient(_))
    }

    /// Whether the step failed only because an earlier workflow it builds
    /// on has not been through it yet ([`persist::NotYetPersisted`]): the
    /// cure is to let that one run first, not to wait.
    pub fn waits_for_earlier(&self) -> bool {
        matches!(self, StepError::Transient(e) if e.downcast_ref::<persist::NotYetPersisted>().is_some())
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Transient(e) => write!(f, "transient: {e:#}"),
            StepError::Permanent(e) => write!(f, "permanent: {e:#}"),
        }
    }
}

impl From<anyhow::Error> for StepError {
    /// Database and I/O errors are transient unless classified otherwise.
    fn from(e: anyhow::Error) -> Self {
        StepError::Transient(e)
    }
}
