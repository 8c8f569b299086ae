//! The OpenAPI document and the router serve the same routes.

use crate::helpers::*;
use api::http::{Access, routes};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn concrete(path: &str) -> String {
    path.replace("{id}", "1").replace("{market}", "BTC-USD")
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_the_router_serves() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let table = routes();
    let served: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, served);

    // The router serves every listed (method, path), with its access rule,
    // and no other method at those paths.
    for r in &table {
        let url = app.url(&concrete(r.path));
        let method = Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        let res = app.client.request(method, &url).send().await.unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        assert!(
            status != 405 && !body.contains("route not found"),
            "{} {}: {status} {body}",
            r.method,
            r.path
        );
        if r.access != Access::Public {
            assert_eq!(status, 401, "{} {} without a token", r.method, r.path);
        }
        let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
        if r.access == Access::Public {
            assert_eq!(
                op["security"],
                serde_json::json!([]),
                "{} {}",
                r.method,
                r.path
            );
        } else {
            assert!(
                op["responses"]["401"].is_object(),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
    // Whatever a route answers a token of each scope alone (403 for a
    // scope it does not take, 404, 415 for a POST without a body, …), the
    // document lists that status for it.
    for r in table.iter().filter(|r| r.access != Access::Public) {
        let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
        for scope in ["trade", "operate", "audit"] {
            let method = Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
            let res = app
                .client
                .request(method, app.url(&concrete(r.path)))
                .bearer_auth(token(SELLER, &[scope]))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16().to_string();
            assert!(
                op["responses"][&status].is_object(),
                "{} {} answers a {scope} token {status}, which its document does not list",
                r.method,
                r.path
            );
        }
    }
    let paths: BTreeSet<&str> = table.iter().map(|r| r.path).collect();
    for path in paths {
        for m in METHODS {
            if served.contains(&(m.to_uppercase(), path.to_string())) {
                continue;
            }
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let res = app
                .client
                .request(method, app.url(&concrete(path)))
                .bearer_auth(token(SELLER, &["trade", "operate", "audit"]))
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                405,
                "{m} {path} is not documented, so not served"
            );
            assert!(res.headers().contains_key("allow"), "{m} {path}");
            assert_problem(res, 405, "method_not_allowed").await;
        }
    }
    let res = app.client.get(app.url("/v1/nowhere")).send().await.unwrap();
    assert_problem(res, 404, "not_found").await;
}
