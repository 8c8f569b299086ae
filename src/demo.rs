//! `clearway demo`: starts the intake and the workers in this process, funds
//! many accounts, and drives an open-loop flow of orders over real HTTP
//! (loopback, many keep-alive connections) at a fixed arrival rate. Latency
//! is measured from each request's *intended* send time, so a stall shows up
//! in the percentiles instead of slowing the generator down (no coordinated
//! omission). Then it waits for the workflows and prints what happened.
//! It doubles as the intake benchmark.

use anyhow::{Context, Result};
use api::app::{IntakeConfig, intake, serve, wait_ready};
use api::auth::{AuthConfig, dev_claims, mint_hs256};
use api::ratelimit::RateConfig;
use hdrhistogram::Histogram;
use pipeline::{AccountId, Asset, Command};
use rust_decimal::Decimal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workers::config::{Settings, connect};

/// What to drive.
#[derive(Clone, Debug)]
pub struct DemoArgs {
    /// Orders per second (arrival rate).
    pub rate: u64,
    /// How long to send.
    pub seconds: u64,
    /// Funded trading accounts.
    pub accounts: u64,
    /// HTTP keep-alive connections.
    pub connections: usize,
    /// Start the workers only once the load ends: the intake alone, as
    /// `clearway serve` sees it when the workers run on other machines.
    pub intake_only: bool,
    /// Seconds of load before the measured `seconds`, reported apart.
    pub warmup: u64,
}

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    /// Latencies (µs): since the last progress line, and before it.
    latencies: std::sync::Mutex<Latencies>,
}

struct Latencies {
    window: Histogram<u64>,
    before: Histogram<u64>,
}

impl Counters {
    fn new() -> Result<Counters> {
        Ok(Counters {
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latencies: std::sync::Mutex::new(Latencies {
                window: Histogram::new_with_bounds(1, 60_000_000, 3)?,
                before: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            }),
        })
    }

    fn latencies(&self) -> std::sync::MutexGuard<'_, Latencies> {
        self.latencies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// p99 and max of the window (µs), which then joins the rest.
    fn take_window(&self) -> Result<(u64, u64)> {
        let mut l = self.latencies();
        let figures = (l.window.value_at_quantile(0.99), l.window.max());
        let Latencies { window, before } = &mut *l;
        before.add(&*window)?;
        window.reset();
        Ok(figures)
    }
}

/// One order for a connection of the load generator: when it is due, whose
/// token, what body.
struct Due {
    due: Instant,
    /// Where its answer is counted: the warm-up's or the measured seconds'.
    counters: Arc<Counters>,
    bearer: hyper::header::HeaderValue,
    body: bytes::Bytes,
}

/// One keep-alive HTTP/1.1 connection (hyper's own client, no pool: the
/// generator should cost as little as it can, it shares the machine): sends
/// what it is given in order, and records the latency of each (µs from when
/// it was due to its answer) in the order's `counters`. A broken
/// connection is opened again.
async fn send_lane(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Due>,
    addr: std::net::SocketAddr,
    mut sender: Option<Sender>,
) -> Result<()> {
    use http_body_util::{BodyExt, Full};
    let host = hyper::header::HeaderValue::try_from(addr.to_string())?;
    while let Some(Due {
        due,
        counters,
        bearer,
        body,
    }) = rx.recv().await
    {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = open_connection(addr).await.ok();
        }
        let status = match sender.as_mut() {
            Some(s) => {
                let req = hyper::Request::post("/v1/orders")
                    .header(hyper::header::HOST, host.clone())
                    .header(hyper::header::AUTHORIZATION, bearer)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))?;
                match s.send_request(req).await {
                    // Read the body, so the connection is free for the next order.
                    Ok(res) => {
                        let status = res.status().as_u16();
                        res.into_body().collect().await.map(|_| status).ok()
                    }
                    Err(_) => None,
                }
            }
            None => None,
        };
        counters
            .latencies()
            .window
            .record((due.elapsed().as_micros() as u64).max(1))?;
        let counter = match status {
            Some(202) => &counters.accepted,
            Some(s) if (400..500).contains(&s) => &counters.rejected,
            _ => &counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The sending half of one of the generator's connections.
type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// The generator's order bodies, built once (the generator shares the
/// machine, so it should cost as little as it can), indexed by
/// `[buy][aggressive][ticks - 1]`: passive orders rest 1–5 ticks away from
/// 50,000; aggressive ones cross as IOC.
fn order_bodies() -> Result<[[[bytes::Bytes; 5]; 2]; 2]> {
    let body = |buy: bool, aggressive: bool, ticks: i64| -> Result<bytes::Bytes> {
        let (mid, offset) = (Decimal::from(50_000), Decimal::new(ticks, 2));
        let price = if buy != aggressive {
            mid - offset
        } else {
            mid + offset
        };
        Ok(bytes::Bytes::from(serde_json::to_vec(
            &serde_json::json!({
                "market": "BTC-USD", "side": if buy { "buy" } else { "sell" }, "type": "limit",
                "price": price.to_string(), "quantity": "0.01", "time_in_force": if aggressive { "ioc" } else { "gtc" },
            }),
        )?))
    };
    let side = |buy: bool, aggressive: bool| -> Result<[bytes::Bytes; 5]> {
        Ok([
            body(buy, aggressive, 1)?,
            body(buy, aggressive, 2)?,
            body(buy, aggressive, 3)?,
            body(buy, aggressive, 4)?,
            body(buy, aggressive, 5)?,
        ])
    };
    Ok([
        [side(false, false)?, side(false, true)?],
        [side(true, false)?, side(true, true)?],
    ])
}

/// A new HTTP/1.1 connection to `addr`, its driver spawned.
async fn open_connection(addr: std::net::SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Runs the demo; returns once the report is printed.
pub async fn run(settings: Settings, args: DemoArgs) -> Result<()> {
    let services = connect(&settings, "clearway-demo").await?;
    let secret: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    let mut auth = AuthConfig::from_env().await?;
    auth.hs256_secret = Some(secret.clone());
    let rate = RateConfig {
        per_account: args.rate.max(1) * 10,
        per_account_burst: args.rate.max(1) * 20,
        global: args.rate.max(10_000) * 2,
    };
    let (issuer, audience) = (auth.issuer.clone(), auth.audience.clone());
    let built = intake(&services, IntakeConfig { auth, rate });
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("Failed to bind")?;
    let listener_addr = listener.local_addr()?;
    let base = format!("http://{listener_addr}");
    let server = tokio::spawn(serve(listener, built.router, stop.clone()));
    let start_workers = || {
        let (services, stop) = (services.clone(), stop.clone());
        tokio::spawn(async move {
            workers::transport::run_workers(&services, stop, api::app::GRACE).await
        })
    };
    let mut workers = (!args.intake_only).then(start_workers);
    wait_ready(&built.host, Duration::from_secs(300)).await?;
    let first_account = 100_000 + (chrono_like_now() % 1_000_000) * 1_000;
    eprintln!(
        "demo: {} on {} transport, data dir {}",
        base,
        format!("{:?}", settings.transport).to_lowercase(),
        settings.data_dir.display()
    );
    eprintln!("demo: funding {} accounts", args.accounts);
    for a in 0..args.accounts {
        for (asset, amount) in [("USD", 100_000_000u64), ("BTC", 10_000)] {
            let cmd = Command::Deposit {
                account: AccountId(first_account + a),
                asset: Asset::parse(asset)?,
                amount: Decimal::from(amount),
            };
            built
                .host
                .submit(cmd)
                .await
                .map_err(|e| anyhow::anyhow!("funding failed: {e}"))?;
        }
    }
    let tokens: Vec<String> = (0..args.accounts)
        .map(|a| {
            mint_hs256(
                &secret,
                &dev_claims(first_account + a, &["trade"], 3_600, &issuer, &audience),
            )
        })
        .collect::<Result<_>>()?;
    let workflows_before = count(&services.db, "select count(*) from workflows").await?;

    // Open loop over a fixed set of keep-alive connections, as wrk2 does:
    // order i is due at start + i × interval and goes to connection
    // i mod N, which sends its orders one after another. A slow answer
    // delays the orders queued behind it, and that delay counts: latency is
    // measured from when each order was due. N connections carry at most
    // N ÷ latency orders a second (Little's law): with 64 at 10,000/s, any
    // stretch slower than 6.4 ms per order leaves orders queued in the
    // generator, where every connection then waits on the same group commit
    // and the lockstep can outlast the slow moment by seconds. Hence 256.
    // Orders of the warm-up count in `warm`, the measured ones in
    // `counters`, whenever their answers arrive.
    let (warm, counters) = (Arc::new(Counters::new()?), Arc::new(Counters::new()?));
    let mut lanes = Vec::with_capacity(args.connections.max(1));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.connections.max(1) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Due>();
        lanes.push(tx);
        // Connected before the clock starts, as a client's keep-alive
        // connections are in steady state (wrk2 does the same).
        let sender = open_connection(listener_addr).await?;
        senders.spawn(send_lane(rx, listener_addr, Some(sender)));
    }
    let bearers: Vec<hyper::header::HeaderValue> = tokens
        .iter()
        .map(|t| hyper::header::HeaderValue::from_str(&format!("Bearer {t}")))
        .collect::<Result<_, _>>()?;
    let (warm_total, total) = (args.rate * args.warmup, args.rate * args.seconds);
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let t0 = Instant::now();
    // When the measured seconds start.
    let start = t0 + interval * warm_total as u32;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let bodies = order_bodies()?;
    let mut last_report = Instant::now();
    for i in 0..warm_total + total {
        let due = t0 + interval * i as u32;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let r = rng.next();
        let (buy, aggressive) = ((r >> 8).is_multiple_of(2), (r >> 9).is_multiple_of(2));
        let body =
            bodies[usize::from(buy)][usize::from(aggressive)][((r >> 10) % 5) as usize].clone();
        let bearer = bearers[(r % args.accounts) as usize].clone();
        let lane = &lanes[i as usize % lanes.len()];
        let owner = if i < warm_total { &warm } else { &counters };
        lane.send(Due {
            due,
            counters: owner.clone(),
            bearer,
            body,
        })
        .map_err(|_| anyhow::anyhow!("a connection of the load generator stopped"))?;
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let now = if i < warm_total { &warm } else { &counters };
            let (p99, max) = now.take_window()?;
            eprintln!(
                "  {:>3}% sent {:>8}  accepted {:>8}  last second: p99 {:>6} µs, max {:>6} µs{}",
                (i + 1) * 100 / (warm_total + total),
                i + 1,
                now.accepted.load(Ordering::Relaxed),
                p99,
                max,
                if i < warm_total { "  (warm-up)" } else { "" },
            );
        }
    }
    drop(lanes);
    while let Some(lane) = senders.join_next().await {
        lane.context("a connection of the load generator panicked")??;
    }
    counters.take_window()?;
    warm.take_window()?;
    let h = counters.latencies().before.clone();
    let sent_for = start.elapsed();
    let accepted = counters.accepted.load(Ordering::Relaxed);
    let warm_accepted = warm.accepted.load(Ordering::Relaxed);
    let expected = workflows_before + (warm_accepted + accepted) as i64;
    let commits = server_figures(&base).await?;
    println!("transport:       {:?}", settings.transport);
    println!(
        "offered:         {} orders/s for {} s ({} orders, {} accounts, {} connections{})",
        args.rate,
        args.seconds,
        total,
        args.accounts,
        args.connections,
        if args.intake_only {
            "; workers started after the load"
        } else {
            ""
        }
    );
    println!(
        "accepted:        {accepted} ({} orders/s over {:.1} s); rejected {}; failed {}",
        accepted * 1000 / sent_for.as_millis().max(1) as u64,
        sent_for.as_secs_f32(),
        counters.rejected.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed)
    );
    if warm_total > 0 {
        let l = warm.latencies().before.clone();
        println!(
            "warm-up:         {} s, {warm_accepted} accepted, {} rejected, {} failed; latency (µs) p50 {}  p99 {}  p99.9 {}  max {} (not in the other figures)",
            args.warmup,
            warm.rejected.load(Ordering::Relaxed),
            warm.failed.load(Ordering::Relaxed),
            l.value_at_quantile(0.5),
            l.value_at_quantile(0.99),
            l.value_at_quantile(0.999),
            l.max()
        );
    }
    println!(
        "latency (µs, from intended send): p50 {}  p99 {}  p99.9 {}  max {}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    println!("{commits}");
    // The intake's figures first: draining the workflows can take a while.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let drain_start = Instant::now();
    let workers = workers.get_or_insert_with(start_workers);
    let mut completed = 0;
    while drain_start.elapsed() < Duration::from_secs(120) {
        completed = count(
            &services.db,
            "select count(*) from workflows where state = 'completed'",
        )
        .await?;
        if completed >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = drain_start.elapsed();
    println!(
        "workflows:       {completed} of {expected} completed, {:.1} s after the last order",
        drained.as_secs_f32()
    );
    stop.cancel();
    server.await.context("server panicked")??;
    workers.await.context("workers panicked")??;
    Ok(())
}

/// From the intake's own `/metrics`: the group commits (how many, how many
/// workflows each and how long on average, and the bucket bound under which
/// 99% finished), and the same bound for the intake's own time on
/// `/v1/orders` (from the request parsed to the answer).
async fn server_figures(base: &str) -> Result<String> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<Decimal>().ok())
            .unwrap_or_default()
    };
    // The first cumulative bucket of the series `prefix` holding 99% of it.
    let p99 = |prefix: &str| {
        let buckets: Vec<(&str, u64)> = text
            .lines()
            .filter_map(|l| {
                let (le, n) = l.strip_prefix(prefix)?.split_once("\"} ")?;
                Some((le, n.trim().parse().ok()?))
            })
            .collect();
        let total = buckets.last().map_or(0, |b| b.1);
        buckets
            .iter()
            .find(|(_, n)| n * 100 >= total * 99)
            .map_or("?", |b| b.0)
            .to_string()
    };
    let commits = value("clearway_engine_commit_seconds_count ");
    let per_commit = commits.max(Decimal::ONE);
    let workflows = value("clearway_engine_committed_workflows_total ");
    let micros = value("clearway_engine_commit_seconds_sum ") * Decimal::from(1_000_000);
    Ok(format!(
        "group commits:   {commits}, {} workflows and {} µs each on average; 99% within {} s\n\
         intake's own:    99% of /v1/orders answered within {} s of being read",
        (workflows / per_commit).round(),
        (micros / per_commit).round(),
        p99("clearway_engine_commit_seconds_bucket{le=\""),
        p99("clearway_http_request_seconds_bucket{route=\"/v1/orders\",le=\""),
    ))
}

async fn count(db: &workers::db::Db, sql: &str) -> Result<i64> {
    db.rows(sql, &[]).await?[0].i64(0)
}

/// Seconds since the epoch, for account numbers that do not collide between runs.
fn chrono_like_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
