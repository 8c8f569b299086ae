fn main() {
    // sqlx::migrate! embeds ../schema at compile time: a new migration must rebuild.
    println!("cargo:rerun-if-changed=../schema");
}
