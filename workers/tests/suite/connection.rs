//! What every PostgreSQL session of Clearway sets.

use super::harness::pg_admin_url;
use workers::db::{BACKEND_FLUSH_AFTER, Db};

async fn backend_flush_after(db: &Db) -> anyhow::Result<String> {
    db.rows("show backend_flush_after", &[]).await?[0].text(0)
}

#[tokio::test]
async fn sessions_ask_the_kernel_to_write_early_unless_the_url_says_otherwise() -> anyhow::Result<()>
{
    let url = pg_admin_url();
    let db = Db::connect(&url, 1).await?;
    assert_eq!(backend_flush_after(&db).await?, BACKEND_FLUSH_AFTER);
    // The engine's own pool, opened on another runtime, has the same options.
    assert_eq!(
        backend_flush_after(&db.for_this_runtime(1)).await?,
        BACKEND_FLUSH_AFTER
    );

    let sep = if url.contains('?') { '&' } else { '?' };
    let own = Db::connect(
        &format!("{url}{sep}options=-c%20backend_flush_after%3D0"),
        1,
    )
    .await?;
    assert_eq!(backend_flush_after(&own).await?, "0");
    Ok(())
}
