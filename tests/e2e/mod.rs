//! Tests that drive the `clearway` binary (modules live in this folder so
//! Cargo builds one test binary).

mod crash;
mod support;
mod up;
