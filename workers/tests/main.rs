//! The workers' integration tests: one binary, one module per concern, every
//! test against real SQLite, real PostgreSQL and SQS/Kinesis/S3 on moto.

mod suite;
