//! End-to-end tests: the real `clearway` binary, started as a user would.

mod e2e;
