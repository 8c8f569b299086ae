//! Rebuilds the crate when a migration under `schema/` changes:
//! `sqlx::migrate!` embeds them at compile time.

fn main() {
    println!("cargo:rerun-if-changed=../schema");
}
