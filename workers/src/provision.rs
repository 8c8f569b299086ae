//! Fresh, isolated resources for one run: a PostgreSQL database of its own,
//! and SQS FIFO queues (each with its dead-letter queue), a Kinesis stream
//! and an S3 bucket under a prefix of its own. Tests and benchmarks use this
//! so that runs never see each other; `infra/local/aws_resources.py` makes
//! the default (`clearway`-prefixed) set the same way.

use crate::config::{self, Settings, TransportKind};
use crate::db::Db;
use crate::workflow::Step;
use anyhow::{Context, Result};
use aws_sdk_sqs::types::QueueAttributeName as Q;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How many receives send a message to its dead-letter queue through SQS'
/// redrive policy: the backstop for a message that crashes its worker
/// again and again. Clearway's own retry policy (8 attempts) decides first
/// and dead-letters with a `reason`; a message also counts a receive each
/// time it is put back after a failed group-mate, so the redrive allows
/// twice the attempts. `infra/local/aws_resources.py` and `infra/aws` set
/// the same.
pub const MAX_RECEIVE_COUNT: u32 = 16;

/// Creates database `name` on the server of `admin_url`; returns its URL.
pub async fn postgres_database(admin_url: &str, name: &str) -> Result<String> {
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name {name:?}: letters, digits and _ only"
    );
    let Db::Pg(admin) = Db::connect(admin_url, 1).await? else {
        anyhow::bail!("{admin_url} is not a PostgreSQL URL")
    };
    // `create database` cannot run inside a transaction.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&admin)
        .await
        .with_context(|| format!("Failed to create database {name}"))?;
    admin.close().await;
    let root = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(root, _)| root);
    Ok(format!("{root}/{name}"))
}

/// Creates `<prefix>-<step>.fifo` with `<prefix>-<step>-dlq.fifo` for every
/// step, the stream `<prefix>-events` (waiting until it is active) and the
/// bucket `<prefix>-archive`.
pub async fn aws_resources(endpoint: Option<&str>, prefix: &str) -> Result<()> {
    let conf = config::aws_config(endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    for step in Step::ALL {
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{step}-dlq.fifo"))
            .attributes(Q::FifoQueue, "true")
            .send()
            .await
            .context("Failed to create a dead-letter queue (is moto running? infra/local/up.sh)")?;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(dlq.queue_url().unwrap_or_default())
            .attribute_names(Q::QueueArn)
            .send()
            .await?
            .attributes()
            .and_then(|a| a.get(&Q::QueueArn).cloned())
            .context("the dead-letter queue has no ARN")?;
        sqs.create_queue()
            .queue_name(format!("{prefix}-{step}.fifo"))
            .attributes(Q::FifoQueue, "true")
            .attributes(Q::VisibilityTimeout, "30")
            .attributes(
                Q::RedrivePolicy,
                format!(
                    r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{MAX_RECEIVE_COUNT}"}}"#
                ),
            )
            .send()
            .await?;
    }
    let kinesis = aws_sdk_kinesis::Client::new(&conf);
    let stream = format!("{prefix}-events");
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .context("Failed to create the stream")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = kinesis
            .describe_stream_summary()
            .stream_name(&stream)
            .send()
            .await?;
        if d.stream_description_summary()
            .is_some_and(|s| s.stream_status().as_str() == "ACTIVE")
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "stream {stream} never became active"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s3conf = aws_sdk_s3::config::Builder::from(&conf)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(s3conf)
        .create_bucket()
        .bucket(format!("{prefix}-archive"))
        .send()
        .await
        .context("Failed to create the bucket")?;
    Ok(())
}

/// Settings for a fresh, isolated deployment named `name` on `kind`: the
/// SQLite file in `data_dir`, or a new PostgreSQL database on the server of
/// `pg_admin_url`; on SQS also new queues, stream and bucket at `aws_endpoint`.
pub async fn fresh(
    kind: TransportKind,
    name: &str,
    data_dir: PathBuf,
    pg_admin_url: &str,
    aws_endpoint: Option<&str>,
) -> Result<Settings> {
    let database_url = match kind {
        TransportKind::Sqlite => format!("sqlite://{}", data_dir.join("clearway.db").display()),
        TransportKind::Postgres | TransportKind::Sqs => {
            postgres_database(pg_admin_url, name).await?
        }
    };
    let aws = kind == TransportKind::Sqs;
    if aws {
        aws_resources(aws_endpoint, name).await?;
    }
    Ok(Settings {
        transport: kind,
        data_dir,
        database_url,
        kinesis: aws,
        s3: aws,
        queue_prefix: name.to_string(),
        stream: format!("{name}-events"),
        bucket: format!("{name}-archive"),
        aws_endpoint: aws_endpoint.filter(|_| aws).map(str::to_string),
        snapshots: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use crate::workflow::Step;

    #[test]
    fn the_redrive_allows_twice_every_steps_attempts() {
        for step in Step::ALL {
            assert!(
                super::MAX_RECEIVE_COUNT >= 2 * step.retry_policy().max_attempts,
                "{step}"
            );
        }
    }
}
