use super::support::start_up;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn steps_done(trace: &Value) -> Vec<String> {
    trace["workflows"][0]["step_attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["outcome"] == "done")
                .map(|s| s["step"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn clearway_up_accepts_a_first_order_and_its_workflow_completes() {
    let mut app = start_up().await;
    let (seller, buyer) = (app.token(1001), app.token(1002));
    let client = reqwest::Client::new();
    let order = |token: &str, side: &str, price: &str| {
        let body = json!({"market": "BTC-USD", "side": side, "type": "limit", "price": price, "quantity": "0.1"});
        client
            .post(format!("{}/v1/orders", app.base))
            .bearer_auth(token.to_string())
            .json(&body)
            .send()
    };
    let maker = order(&seller, "sell", "50000").await.unwrap();
    assert_eq!(maker.status(), 202, "{}", app.log());
    let taker = order(&buyer, "buy", "50000").await.unwrap();
    assert_eq!(taker.status(), 202);
    let taker: Value = taker.json().await.unwrap();
    assert_eq!(taker["status"], "filled");

    let trace_url = format!("{}{}", app.base, taker["links"]["trace"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let trace: Value = client
            .get(&trace_url)
            .bearer_auth(&buyer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if trace["workflows"][0]["state"] == "completed" {
            assert_eq!(
                steps_done(&trace),
                ["persist", "settle", "publish", "archive"]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workflow did not complete: {trace}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.terminate().await.success(), "{}", app.log());
}

/// A second `clearway up` on a data directory in use refuses to start and
/// names the process that holds it; the first goes on serving.
#[tokio::test]
async fn a_second_up_on_the_same_data_dir_refuses_to_start() {
    let app = start_up().await;
    let out = super::support::clearway(app.dir.path())
        .args(["up", "--listen", "127.0.0.1:0"])
        .output()
        .expect("clearway runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("another clearway (pid {})", app.child.id())),
        "{err}"
    );
    let ready = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
}
