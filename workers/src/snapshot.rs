//! Engine snapshots, so that recovery does not replay the whole journal.
//!
//! The intake writes its engine's state every [`SnapshotPolicy::every`]
//! sequence numbers into `engine_snapshots` (with the SHA-256 of what it
//! wrote). Recovery loads the newest snapshot that leaves at least
//! [`SnapshotPolicy::replay_at_least`] sequence numbers of the journal after
//! it, and replays only those ([`crate::recovery::replay`]): the replay
//! still checks every replayed workflow against its recorded events, and
//! it rebuilds what the intake keeps only for recent orders (the orders
//! that closed but may not be persisted yet). What the state holds is the
//! caller's business: this module stores and finds text.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::db::{Arg, Db};

/// How many snapshots are kept (the newest).
pub const KEEP: i64 = 3;

/// When snapshots are taken and which one recovery loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// A snapshot every this many sequence numbers (`CLEARWAY_SNAPSHOT_EVERY`);
    /// 0 takes none, and recovery then replays the whole journal.
    pub every: u64,
    /// Recovery replays at least this many sequence numbers of the journal
    /// (when there are that many): the intake's map of recently closed orders
    /// is rebuilt from them.
    pub replay_at_least: u64,
    /// How long the intake's index keeps a client order id (µs): not an
    /// environment setting ([`crate::client_ids::CLIENT_ID_WINDOW_US`], 24 hours); tests
    /// shorten it.
    pub client_id_window_us: u64,
}

impl Default for SnapshotPolicy {
    /// Every 5,000,000 sequence numbers (≈ 4 min at 10,000 orders/s in the
    /// demo's mix; a replay of that many takes ≈ 12 s on the
    /// seventh session's machine, BENCHMARKS.md), and at least 65,536 replayed (the
    /// intake's recently closed orders). A snapshot costs ≈ 1 s of CPU
    /// with a deep book, so one every 45 s showed in the p99.
    fn default() -> SnapshotPolicy {
        SnapshotPolicy {
            every: 5_000_000,
            replay_at_least: 65_536,
            client_id_window_us: crate::client_ids::CLIENT_ID_WINDOW_US,
        }
    }
}

/// A snapshot as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The engine's last sequence number when it was taken.
    pub seq: u64,
    /// What the caller saved.
    pub state: String,
}

/// The hex SHA-256 of `state`, as [`save`] wants it (computed apart, so a
/// caller can do it off a busy thread).
pub fn sha256(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// Saves `state`, taken at sequence number `seq`, with its [`sha256`], and
/// drops all but the newest [`KEEP`]. Saving the same `seq` twice keeps the
/// first.
pub async fn save(db: &Db, seq: u64, state: String, sha256: String, now_us: i64) -> Result<()> {
    let seq = i64::try_from(seq).context("sequence number out of range")?;
    db.exec(
        "insert into engine_snapshots (seq, taken_at, sha256, state) values ($1, $2, $3, $4) \
         on conflict (seq) do nothing",
        &[
            Arg::I64(seq),
            Arg::I64(now_us),
            Arg::Text(sha256),
            Arg::Text(state),
        ],
    )
    .await?;
    db.exec(
        "delete from engine_snapshots where seq < \
         (select min(seq) from (select seq from engine_snapshots order by seq desc limit $1) as newest)",
        &[Arg::I64(KEEP)],
    )
    .await?;
    Ok(())
}

/// The newest snapshot that leaves at least `replay_at_least` sequence
/// numbers of the journal after it, if any. A snapshot whose text does not
/// match its SHA-256 is an error (the caller may replay the whole journal
/// instead).
pub async fn newest_usable(db: &Db, replay_at_least: u64) -> Result<Option<Stored>> {
    // The journal's newest workflow starts at its id (its first event's
    // sequence number).
    let end = db
        .rows("select coalesce(max(id), 0) from workflows", &[])
        .await?[0]
        .i64(0)?;
    let upto = end - i64::try_from(replay_at_least).unwrap_or(i64::MAX);
    if upto <= 0 {
        return Ok(None);
    }
    db.rows(
        "select seq, sha256, state from engine_snapshots where seq <= $1 order by seq desc limit 1",
        &[Arg::I64(upto)],
    )
    .await?
    .first()
    .map(checked)
    .transpose()
}

/// A row `(seq, sha256, state)` as [`Stored`], once `state` matches its SHA-256.
fn checked(row: &crate::db::Row) -> Result<Stored> {
    let seq = row.i64(0)?;
    let (sum, state) = (row.text(1)?, row.text(2)?);
    if sha256(&state) != sum {
        bail!("the engine snapshot at sequence {seq} does not match its SHA-256");
    }
    Ok(Stored {
        seq: u64::try_from(seq).context("negative sequence number")?,
        state,
    })
}

/// What the intake's snapshot holds, as read back (the intake writes the
/// same shape): the engine's state and the client order id index.
#[derive(Debug, serde::Deserialize)]
pub struct Contents {
    /// The engine as of the snapshot's sequence number.
    pub engine: pipeline::EngineState,
    /// Every `(account, client_order_id)` placed within the window before
    /// the snapshot's last command, in no order.
    pub client_ids: Vec<crate::client_ids::ClientIdEntry>,
    /// The window the index kept ids for (µs); `None` in a snapshot from
    /// before the window, whose index kept every id.
    #[serde(default)]
    pub client_id_window_us: Option<u64>,
}

/// Every stored snapshot, oldest first, each checked against its SHA-256.
pub async fn all(db: &Db) -> Result<Vec<Stored>> {
    let rows = db
        .rows(
            "select seq, sha256, state from engine_snapshots order by seq",
            &[],
        )
        .await?;
    rows.iter().map(checked).collect()
}
