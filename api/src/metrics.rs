//! Prometheus text metrics, kept by hand in atomics and one small map:
//! request counts by route and status, the engine's batch commits, the
//! WebSocket clients connected and Redis publish failures.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Every counter the intake exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route template, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Group commits that succeeded.
    pub commits: AtomicU64,
    /// Group commits that failed (the engine then failed closed).
    pub commit_failures: AtomicU64,
    /// Workflows made durable by those commits.
    pub committed_workflows: AtomicU64,
    /// Commands the engine rejected.
    pub rejects: AtomicU64,
    /// Successful engine rebuilds from the journal.
    pub rebuilds: AtomicU64,
    /// WebSocket clients connected now (a gauge).
    pub ws_clients: AtomicI64,
    /// Messages (publishes and book snapshots) that did not reach Redis.
    pub redis_publish_failures: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, method: &str, route: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE clearway_http_requests_total counter");
        for ((method, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "clearway_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let counters = [
            ("clearway_engine_commits_total", &self.commits),
            (
                "clearway_engine_commit_failures_total",
                &self.commit_failures,
            ),
            (
                "clearway_engine_committed_workflows_total",
                &self.committed_workflows,
            ),
            ("clearway_engine_rejects_total", &self.rejects),
            ("clearway_engine_rebuilds_total", &self.rebuilds),
            (
                "clearway_redis_publish_failures_total",
                &self.redis_publish_failures,
            ),
        ];
        for (name, v) in counters {
            let _ = writeln!(
                out,
                "# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE clearway_ws_clients gauge\nclearway_ws_clients {}",
            self.ws_clients.load(Ordering::Relaxed)
        );
        out
    }
}

/// Middleware: counts every request by its route template.
pub async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let res = next.run(req).await;
    metrics.request(&method, &route, res.status().as_u16());
    res
}
