//! The archive step's production store: S3, written with `If-None-Match: *`.

use crate::steps::StepError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;

/// An S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
}

fn transient<E: std::error::Error + Send + Sync + 'static>(what: &str, e: E) -> StepError {
    StepError::Transient(anyhow::anyhow!(
        "{what}: {}",
        aws_sdk_s3::error::DisplayErrorContext(e)
    ))
}

impl S3Archive {
    /// An archive in `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3Archive {
        S3Archive {
            client,
            bucket: bucket.into(),
        }
    }

    /// Puts the object unless one exists (HTTP 412 means it does: the stored
    /// bytes are read back and returned, so the checksum recorded is the one
    /// of the object that is really there).
    pub async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<Vec<u8>, StepError> {
        let res = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .if_none_match("*")
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(bytes),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(412) => {
                self.get(key).await?.ok_or_else(|| {
                    StepError::Transient(anyhow::anyhow!(
                        "object {key} reported present but not readable"
                    ))
                })
            }
            Err(e) => Err(transient("PutObject failed", e)),
        }
    }

    /// Reads the object at `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| transient("GetObject body", e))?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
            Err(e) => Err(transient("GetObject failed", e)),
        }
    }
}
