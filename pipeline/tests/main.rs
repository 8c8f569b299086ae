//! Integration tests: one binary (see STYLE.md), modules under `suite/`.

mod suite;
