/// Runs an `async fn(TransportKind) -> anyhow::Result<()>` as one test per
/// transport: `<name>::sqlite`, `<name>::postgres`, `<name>::sqs`; or per
/// transport named (`per_transport!(name: sqlite Sqlite, postgres Postgres)`).
macro_rules! per_transport {
    ($name:ident) => {
        per_transport!($name: sqlite Sqlite, postgres Postgres, sqs Sqs);
    };
    ($name:ident: $($test:ident $kind:ident),+) => {
        mod $name {
            use workers::config::TransportKind;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$name(TransportKind::$kind).await
                }
            )+
        }
    };
}

/// [`per_transport!`] for the database transports only (sqlite, postgres).
macro_rules! per_database_transport {
    ($name:ident) => {
        per_transport!($name: sqlite Sqlite, postgres Postgres);
    };
}

mod audit;
mod cancel;
mod connection;
mod fifo;
mod harness;
mod idempotency;
mod recovery;
mod retries;
mod workflow;
