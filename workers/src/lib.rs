//! # Layout
//! (being written)
