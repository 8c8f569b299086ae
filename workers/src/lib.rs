//! # Layout
//!
//! Clearway's workflow runtime: every accepted command becomes a workflow
//! (persist → settle → publish → archive) whose steps run on queue-backed
//! workers, idempotently, with retries and a dead-letter path.
//!
//! - [`db`]: one SQL text for PostgreSQL and SQLite (`Db`, `Tx`, `Arg`, `Row`;
//!   SQLite writers queue in-process, the intake first: `WriteQueue`; a
//!   PostgreSQL connection kept between statements: `HeldConnection`);
//! - [`workflow`]: the definition — steps, kinds, states, retry policy, input;
//! - [`records`]: workflow state and the append-only attempt history;
//! - [`steps`]: the four steps, a file each (`persist`, `settle`, `publish`, `archive`);
//! - [`sinks`]: where publish and archive write (local log and directory, Kinesis, S3);
//! - [`runtime`]: runs one step for a batch of workflows and decides done / retry / dead;
//! - [`transport`]: how step jobs travel — apalis-sqlite, apalis-postgres, SQS FIFO;
//! - [`recovery`]: rebuilds the engine from the journal on start;
//! - [`snapshot`]: engine snapshots, so recovery replays only the journal's tail;
//! - [`client_ids`]: the index of client order ids (24 hours of places), which
//!   snapshots hold: the intake answers retries from it, `ops verify` rebuilds it;
//! - [`ops`]: the operator and auditor views behind `clearway ops` (`verify` replays
//!   the whole journal and checks the stored snapshots against it);
//! - [`audit`]: the rest of `ops verify` — ledger, trade and order rows,
//!   published events, archived records and balances checked against the
//!   journal, and the rows no event of it implies;
//! - [`config`]: building all of the above from the environment;
//! - [`provision`]: fresh, isolated databases, queues, stream and bucket (tests, benchmarks).

pub mod audit;
pub mod client_ids;
pub mod config;
pub mod db;
pub mod ops;
pub mod provision;
pub mod records;
pub mod recovery;
pub mod runtime;
pub mod sinks;
pub mod snapshot;
pub mod steps;
pub mod transport;
pub mod workflow;
