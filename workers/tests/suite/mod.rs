/// Runs an `async fn(TransportKind) -> anyhow::Result<()>` as one test per
/// transport: `<name>::sqlite`, `<name>::postgres`, `<name>::sqs`.
macro_rules! per_transport {
    ($name:ident) => {
        mod $name {
            use workers::config::TransportKind;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                super::$name(TransportKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                super::$name(TransportKind::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqs() -> anyhow::Result<()> {
                super::$name(TransportKind::Sqs).await
            }
        }
    };
}

/// [`per_transport!`] for the database transports only (sqlite, postgres).
macro_rules! per_database_transport {
    ($name:ident) => {
        mod $name {
            use workers::config::TransportKind;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                super::$name(TransportKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                super::$name(TransportKind::Postgres).await
            }
        }
    };
}

mod connection;
mod harness;
mod idempotency;
mod recovery;
mod retries;
mod workflow;
