//! Prometheus text metrics, kept by hand in atomics and one small map:
//! request counts by route and status, the engine's batch commits (and a
//! histogram of how long they take), the WebSocket clients connected and
//! Redis publish failures.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// One route's requests: answered per (method, status), and how long they took.
#[derive(Debug, Default)]
struct RouteStats {
    answered: HashMap<(Method, u16), u64>,
    latency: Histogram,
}

/// Every counter the intake exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Route template → its requests. Keyed by route first so that counting
    /// a request allocates nothing once its route is known.
    requests: Mutex<HashMap<String, RouteStats>>,
    /// Group commits that failed (the engine then failed closed).
    pub commit_failures: AtomicU64,
    /// Workflows made durable by those commits.
    pub committed_workflows: AtomicU64,
    /// How long successful group commits took (its count is also
    /// `clearway_engine_commits_total`).
    pub commit_latency: Histogram,
    /// Commands the engine rejected.
    pub rejects: AtomicU64,
    /// Successful engine rebuilds from the journal.
    pub rebuilds: AtomicU64,
    /// The snapshot the last rebuild started from (its sequence number;
    /// 0: none, the whole journal was replayed). A gauge.
    pub rebuild_snapshot_seq: AtomicU64,
    /// The workflows the last rebuild replayed from the journal. A gauge.
    pub rebuild_replayed: AtomicU64,
    /// WebSocket clients connected now (a gauge).
    pub ws_clients: AtomicI64,
    /// Messages (publishes and book snapshots) that did not reach Redis.
    pub redis_publish_failures: AtomicU64,
}

impl Metrics {
    /// Counts one answered request that took `took`.
    pub fn request(&self, method: &Method, route: &str, status: u16, took: std::time::Duration) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let key = (method.clone(), status);
        let stats = match m.get_mut(route) {
            Some(stats) => stats,
            None => m.entry(route.to_string()).or_default(),
        };
        *stats.answered.entry(key).or_default() += 1;
        stats.latency.observe(took);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE clearway_http_requests_total counter");
        let mut rows: Vec<(String, &str, u16, u64)> = Vec::new();
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for (route, stats) in requests.iter() {
            for ((method, status), n) in &stats.answered {
                rows.push((method.to_string(), route, *status, *n));
            }
        }
        rows.sort();
        for (method, route, status, n) in rows {
            let _ = writeln!(
                out,
                "clearway_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let mut routes: Vec<_> = requests.iter().collect();
        routes.sort_by_key(|(route, _)| *route);
        let _ = writeln!(out, "# TYPE clearway_http_request_seconds histogram");
        for (route, stats) in routes {
            let labels = format!("route=\"{route}\"");
            stats
                .latency
                .render("clearway_http_request_seconds", &labels, &mut out);
        }
        drop(requests);
        let _ = writeln!(
            out,
            "# TYPE clearway_engine_commits_total counter\nclearway_engine_commits_total {}",
            self.commit_latency.count()
        );
        let counters = [
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
        let _ = writeln!(out, "# TYPE clearway_engine_commit_seconds histogram");
        self.commit_latency
            .render("clearway_engine_commit_seconds", "", &mut out);
        let gauges = [
            (
                "clearway_engine_rebuild_snapshot_seq",
                self.rebuild_snapshot_seq.load(Ordering::Relaxed) as i64,
            ),
            (
                "clearway_engine_rebuild_replayed_workflows",
                self.rebuild_replayed.load(Ordering::Relaxed) as i64,
            ),
            (
                "clearway_ws_clients",
                self.ws_clients.load(Ordering::Relaxed),
            ),
        ];
        for (name, v) in gauges {
            let _ = writeln!(out, "# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

/// Upper bounds of [`Histogram`]'s buckets, in microseconds (0.25 ms to 1 s).
const BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
];

/// A Prometheus histogram of durations with fixed buckets ([`BUCKETS_US`]),
/// lock-free to observe.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at most each bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS_US.len()],
    /// Observations over the last bound.
    over: AtomicU64,
    /// Sum of all observations, in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        match BUCKETS_US.iter().position(|&b| us <= b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    fn count(&self) -> u64 {
        self.buckets
            .iter()
            .chain([&self.over])
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// Appends the series of `name` with `labels` (`k="v",…`, or empty), in
    /// seconds as Prometheus wants; the `# TYPE` line is the caller's.
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let le = seconds(*bound);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let count = cumulative + self.over.load(Ordering::Relaxed);
        let sum = seconds(self.sum_us.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {sum}\n{name}_count{braces} {count}"
        );
    }
}

/// `us` microseconds as exact decimal seconds (`250` → `0.00025`).
fn seconds(us: u64) -> rust_decimal::Decimal {
    rust_decimal::Decimal::from_i128_with_scale(i128::from(us), 6).normalize()
}

/// The methods counted by name; anything else (a client may send any token
/// as a method) is counted as `OTHER`, so callers cannot grow the series.
const COUNTED: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];

/// Middleware: counts every request by its route template.
pub async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = if COUNTED.contains(req.method()) {
        req.method().clone()
    } else {
        Method::from_bytes(b"OTHER").unwrap_or_default()
    };
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.request(&method, route, res.status().as_u16(), started.elapsed());
    res
}
