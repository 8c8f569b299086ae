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

/// What every connection of the load generator shares: the schedule, the
/// requests' parts, and where answers are counted.
struct Plan {
    /// When order 0 is due.
    t0: Instant,
    /// Between two orders' due times, in nanoseconds.
    interval_ns: u64,
    /// Orders of the warm-up, then of the measured seconds.
    warm_total: u64,
    total: u64,
    /// How many connections: connection `k` sends the orders `i ≡ k (mod lanes)`.
    lanes: u64,
    addr: std::net::SocketAddr,
    /// Each account's request head up to its `authorization` line.
    heads: Vec<Vec<u8>>,
    /// [`order_tails`]: each body with its last headers in front.
    tails: [[[Vec<u8>; 5]; 2]; 2],
    /// Orders handed to a connection so far.
    sent: AtomicU64,
    warm: Arc<Counters>,
    counters: Arc<Counters>,
}

impl Plan {
    /// When order `i` is due.
    fn due(&self, i: u64) -> Instant {
        self.t0 + Duration::from_nanos(self.interval_ns.saturating_mul(i))
    }

    /// Order `i`'s request, written into `out`: whose it is and what it
    /// asks are a function of `i` alone, so runs are comparable.
    fn request(&self, i: u64, out: &mut Vec<u8>) {
        let r = mix(i);
        let (buy, aggressive) = ((r >> 8) & 1 == 0, (r >> 9) & 1 == 0);
        out.clear();
        out.extend_from_slice(&self.heads[(r % self.heads.len() as u64) as usize]);
        out.extend_from_slice(
            &self.tails[usize::from(buy)][usize::from(aggressive)][((r >> 10) % 5) as usize],
        );
    }
}

/// A bijective mix of a 64-bit integer (splitmix64's finaliser).
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One keep-alive HTTP/1.1 connection of the load generator, as wrk2 runs
/// one: it sends order `lane`, `lane + N`, `lane + 2N`, … each at its due
/// time (or at once, when the previous answer came late), one in flight,
/// and records each latency (µs from when the order was due to the end of
/// its answer) with the warm-up's or the measured seconds' counters. The
/// request is pre-built bytes and the answer is read with `httparse`: the
/// generator shares the machine with what it measures, so it should cost
/// as little as it can (hyper's client took a channel hop and a task
/// switch each way per request). A broken connection is opened again.
async fn lane(plan: Arc<Plan>, lane: u64, mut stream: Option<tokio::net::TcpStream>) -> Result<()> {
    let (mut request, mut buf) = (Vec::with_capacity(1024), Vec::with_capacity(4096));
    let mut i = lane;
    while i < plan.warm_total + plan.total {
        let due = plan.due(i);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        plan.sent.fetch_add(1, Ordering::Relaxed);
        plan.request(i, &mut request);
        if stream.is_none() {
            stream = dial(plan.addr).await.ok();
        }
        let status = match stream.as_mut() {
            Some(s) => exchange(s, &request, &mut buf).await.ok(),
            None => None,
        };
        if status.is_none() {
            stream = None;
        }
        let counters = if i < plan.warm_total {
            &plan.warm
        } else {
            &plan.counters
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
        i += plan.lanes;
    }
    Ok(())
}

/// Sends `request` on `stream` and reads the answer whole (its headers and
/// `Content-Length` bytes of body) into `buf`; returns its status. An
/// answer without a length, or one that ends early, is an error (the
/// caller then opens a new connection).
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await?;
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len());
        }
        if stream.read_buf(buf).await? == 0 {
            anyhow::bail!("connection closed mid-answer");
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = res.parse(buf)? else {
            continue;
        };
        let length: usize = res
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .context("an answer without Content-Length")?
            .value
            .iter()
            .try_fold(0usize, |n, &b| {
                b.is_ascii_digit().then(|| n * 10 + usize::from(b - b'0'))
            })
            .context("a malformed Content-Length")?;
        let status = res.code.context("an answer without a status")?;
        let whole = head + length;
        while buf.len() < whole {
            buf.reserve(whole - buf.len());
            if stream.read_buf(buf).await? == 0 {
                anyhow::bail!("connection closed mid-body");
            }
        }
        anyhow::ensure!(buf.len() == whole, "more than one answer to one request");
        return Ok(status);
    }
}

/// The generator's order bodies, built once with their last headers in
/// front (the generator shares the machine, so it should cost as little as
/// it can), indexed by `[buy][aggressive][ticks - 1]`: passive orders rest
/// 1–5 ticks away from 50,000; aggressive ones cross as IOC.
fn order_tails() -> Result<[[[Vec<u8>; 5]; 2]; 2]> {
    let tail = |buy: bool, aggressive: bool, ticks: i64| -> Result<Vec<u8>> {
        let (mid, offset) = (Decimal::from(50_000), Decimal::new(ticks, 2));
        let price = if buy != aggressive {
            mid - offset
        } else {
            mid + offset
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "market": "BTC-USD", "side": if buy { "buy" } else { "sell" }, "type": "limit",
            "price": price.to_string(), "quantity": "0.01", "time_in_force": if aggressive { "ioc" } else { "gtc" },
        }))?;
        let mut tail = format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        tail.extend_from_slice(&body);
        Ok(tail)
    };
    let side = |buy: bool, aggressive: bool| -> Result<[Vec<u8>; 5]> {
        Ok([
            tail(buy, aggressive, 1)?,
            tail(buy, aggressive, 2)?,
            tail(buy, aggressive, 3)?,
            tail(buy, aggressive, 4)?,
            tail(buy, aggressive, 5)?,
        ])
    };
    Ok([
        [side(false, false)?, side(false, true)?],
        [side(true, false)?, side(true, true)?],
    ])
}

/// A new connection to `addr`, with Nagle's delay off (as the server's).
async fn dial(addr: std::net::SocketAddr) -> Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs the demo; returns once the report is printed.
pub async fn run(settings: Settings, args: DemoArgs) -> Result<()> {
    let _lock = api::dev::lock_data_dir(&settings.data_dir)?;
    let services = connect(&settings, "clearway-demo").await?;
    crate::release_stopped(&services).await?;
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
            let cmd = Command::deposit(
                AccountId(first_account + a),
                Asset::parse(asset)?,
                Decimal::from(amount),
            );
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
    let (warm_total, total) = (args.rate * args.warmup, args.rate * args.seconds);
    let connections = args.connections.max(1) as u64;
    let heads = tokens
        .iter()
        .map(|t| {
            format!(
                "POST /v1/orders HTTP/1.1\r\nhost: {listener_addr}\r\nauthorization: Bearer {t}\r\n"
            )
            .into_bytes()
        })
        .collect();
    // Connected before the clock starts, as a client's keep-alive
    // connections are in steady state (wrk2 does the same).
    let mut streams = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        streams.push(dial(listener_addr).await?);
    }
    let plan = Arc::new(Plan {
        t0: Instant::now() + Duration::from_millis(10),
        interval_ns: 1_000_000_000 / args.rate.max(1),
        warm_total,
        total,
        lanes: connections,
        addr: listener_addr,
        heads,
        tails: order_tails()?,
        sent: AtomicU64::new(0),
        warm: Arc::new(Counters::new()?),
        counters: Arc::new(Counters::new()?),
    });
    let (warm, counters) = (plan.warm.clone(), plan.counters.clone());
    // When the measured seconds start.
    let start = plan.due(warm_total);
    let mut senders = tokio::task::JoinSet::new();
    for (k, stream) in streams.into_iter().enumerate() {
        senders.spawn(lane(plan.clone(), k as u64, Some(stream)));
    }
    // Each second: how far along, and the last second's p99 and max.
    let mut tick = tokio::time::interval_at(
        (plan.t0 + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    loop {
        tokio::select! {
            joined = senders.join_next() => match joined {
                Some(lane) => lane.context("a connection of the load generator panicked")??,
                None => break,
            },
            _ = tick.tick() => {
                let sent = plan.sent.load(Ordering::Relaxed);
                let warming = Instant::now() < start;
                let now = if warming { &warm } else { &counters };
                let (p99, max) = now.take_window()?;
                eprintln!(
                    "  {:>3}% sent {:>8}  accepted {:>8}  last second: p99 {:>6} µs, max {:>6} µs{}",
                    sent * 100 / (warm_total + total).max(1),
                    sent,
                    now.accepted.load(Ordering::Relaxed),
                    p99,
                    max,
                    if warming { "  (warm-up)" } else { "" },
                );
            }
        }
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
