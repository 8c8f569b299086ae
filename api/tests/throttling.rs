use crate::helpers::*;
use api::ratelimit::RateConfig;

#[tokio::test]
async fn an_account_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(RateConfig {
        per_account: 1,
        per_account_burst: 2,
        global: 10_000,
    })
    .await;
    let mut statuses = vec![];
    for _ in 0..3 {
        statuses.push(app.get(SELLER, "/v1/balances").send().await.unwrap());
    }
    let last = statuses.pop().unwrap();
    assert!(statuses.iter().all(|r| r.status() == 200));
    // Remaining counts down from the bucket's capacity (the burst).
    let header = |r: &reqwest::Response, name: &str| -> u64 {
        r.headers()[name].to_str().unwrap().parse().unwrap()
    };
    for (r, left) in statuses.iter().zip([1, 0]) {
        assert_eq!(header(r, "ratelimit-limit"), 2);
        assert_eq!(header(r, "ratelimit-remaining"), left);
    }
    assert_eq!(header(&last, "ratelimit-limit"), 2);
    assert!(last.headers().get("retry-after").is_some());
    assert!(last.headers().get("ratelimit-limit").is_some());
    assert!(last.headers().get("x-ratelimit-remaining").is_some());
    assert_problem(last, 429, "rate_limited").await;
    // Another account has its own bucket.
    assert_eq!(
        app.get(BUYER, "/v1/balances")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
