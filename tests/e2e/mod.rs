//! Tests that drive the `clearway` binary (modules live in this folder so
//! Cargo builds one test binary).

mod crash;
mod demo;
mod midstep;
mod support;
mod up;
