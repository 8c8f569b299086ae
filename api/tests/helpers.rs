//! `spawn_app`: the real router on 127.0.0.1:0 with a fresh SQLite data dir,
//! the engine host and the workers in-process, demo accounts funded;
//! `spawn_app_on_postgres` for the PostgreSQL transport.

use std::time::Duration;

use api::app::{IntakeConfig, run_with};
use api::auth::{AuthConfig, Claims, dev_claims, mint_hs256};
use api::ratelimit::RateConfig;
use api::stream::StreamConfig;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use workers::config::{Settings, TransportKind, connect};
use workers::db::Db;

pub const SECRET: &[u8] = b"test-secret-not-for-production";
pub const SELLER: u64 = 1001;
pub const BUYER: u64 = 1002;
/// An account with no funds.
pub const PAUPER: u64 = 4242;

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub db: Db,
    /// The app's database URL (for a second, independent connection).
    pub database_url: String,
    shutdown: CancellationToken,
    /// The intake's task (server, workers), to wait for on a restart.
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// What it was started with, for a restart on the same store.
    settings: Settings,
    dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(RateConfig::default()).await
}

pub async fn spawn_app_with(rate: RateConfig) -> TestApp {
    spawn_app_full(rate, StreamConfig::default()).await
}

/// An app whose streams use `redis_url`.
pub async fn spawn_app_with_redis(redis_url: &str) -> TestApp {
    let streams = StreamConfig {
        redis_url: Some(redis_url.into()),
        ..StreamConfig::default()
    };
    spawn_app_full(RateConfig::default(), streams).await
}

pub async fn spawn_app_full(rate: RateConfig, streams: StreamConfig) -> TestApp {
    spawn(Store::Sqlite, rate, streams, hs256_auth()).await
}

/// An app on the PostgreSQL transport, in a fresh `cwtest…` database (CI
/// drops those).
pub async fn spawn_app_on_postgres() -> TestApp {
    spawn(
        Store::Postgres,
        RateConfig::default(),
        StreamConfig::default(),
        hs256_auth(),
    )
    .await
}

/// An app (SQLite) that verifies tokens with `auth`.
pub async fn spawn_app_with_auth(auth: AuthConfig) -> TestApp {
    spawn(
        Store::Sqlite,
        RateConfig::default(),
        StreamConfig::default(),
        auth,
    )
    .await
}

/// Where the app keeps its journal and queue.
enum Store {
    Sqlite,
    Postgres,
}

fn hs256_auth() -> AuthConfig {
    AuthConfig {
        issuer: api::auth::DEFAULT_ISSUER.into(),
        audience: api::auth::DEFAULT_AUDIENCE.into(),
        hs256_secret: Some(SECRET.to_vec()),
        jwks: None,
        cache: Default::default(),
    }
}

/// The PostgreSQL server's admin database (`DATABASE_URL` when it is a
/// PostgreSQL URL, as in the workers' suite).
pub fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates a fresh `cwtest<uuid>` database and returns its URL.
async fn create_pg_database() -> String {
    let unique = format!("cwtest{}", uuid::Uuid::new_v4().simple());
    let admin = pg_admin_url();
    let Db::Pg(pool) = Db::connect(&admin, 1).await.expect("the admin database") else {
        unreachable!("a postgres URL")
    };
    // `create database` cannot run inside a transaction.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {unique}")))
        .execute(&pool)
        .await
        .expect("a fresh database");
    pool.close().await;
    let root = admin
        .rsplit_once('/')
        .map_or(admin.clone(), |(r, _)| r.to_string());
    format!("{root}/{unique}")
}

async fn spawn(store: Store, rate: RateConfig, streams: StreamConfig, auth: AuthConfig) -> TestApp {
    let dir = tempfile::tempdir().expect("a temp dir");
    start(settings_for(store, &dir).await, dir, rate, streams, auth).await
}

/// Settings for a fresh store in `dir`.
async fn settings_for(store: Store, dir: &tempfile::TempDir) -> Settings {
    // Start from the environment's settings so fields added later keep their defaults.
    let mut settings = Settings::from_env().expect("settings");
    settings.data_dir = dir.path().to_path_buf();
    match store {
        Store::Sqlite => {
            settings.transport = TransportKind::Sqlite;
            settings.database_url =
                format!("sqlite://{}", dir.path().join("clearway.db").display());
        }
        Store::Postgres => {
            settings.transport = TransportKind::Postgres;
            settings.database_url = create_pg_database().await;
        }
    }
    settings.kinesis = false;
    settings.s3 = false;
    settings
}

/// An app (SQLite, or PostgreSQL when `postgres`) whose engine snapshots
/// follow `snapshots`.
pub async fn spawn_app_with_snapshots(
    postgres: bool,
    snapshots: workers::snapshot::SnapshotPolicy,
) -> TestApp {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = if postgres {
        Store::Postgres
    } else {
        Store::Sqlite
    };
    let mut settings = settings_for(store, &dir).await;
    settings.snapshots = snapshots;
    start(
        settings,
        dir,
        RateConfig::default(),
        StreamConfig::default(),
        hs256_auth(),
    )
    .await
}

async fn start(
    settings: Settings,
    dir: tempfile::TempDir,
    rate: RateConfig,
    streams: StreamConfig,
    auth: AuthConfig,
) -> TestApp {
    let services = connect(&settings, "test").await.expect("services");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let shutdown = CancellationToken::new();
    let db = services.db.clone();
    let task = tokio::spawn(run_with(
        listener,
        services,
        IntakeConfig { auth, rate },
        streams,
        true,
        true,
        shutdown.clone(),
    ));
    let app = TestApp {
        base,
        client: Client::new(),
        db,
        database_url: settings.database_url.clone(),
        shutdown,
        task: Some(task),
        settings,
        dir: Some(dir),
    };
    app.wait_until("the intake is ready", || async {
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    app
}

impl TestApp {
    /// Stops this app (server and workers) and starts another on the same
    /// database and data directory, as a restart of the process would.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the app stops")
                .expect("the app's task")
                .expect("the app ran");
        }
        let dir = self.dir.take().expect("a data dir");
        start(
            self.settings.clone(),
            dir,
            RateConfig::default(),
            StreamConfig::default(),
            hs256_auth(),
        )
        .await
    }
}

pub fn claims(account: u64, scopes: &[&str]) -> Claims {
    dev_claims(
        account,
        scopes,
        3600,
        api::auth::DEFAULT_ISSUER,
        api::auth::DEFAULT_AUDIENCE,
    )
}

pub fn token(account: u64, scopes: &[&str]) -> String {
    mint_hs256(SECRET, &claims(account, scopes)).expect("a token")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, account: u64, path: &str) -> RequestBuilder {
        self.client
            .get(self.url(path))
            .bearer_auth(token(account, &["trade"]))
    }

    pub fn delete(&self, account: u64, path: &str) -> RequestBuilder {
        self.client
            .delete(self.url(path))
            .bearer_auth(token(account, &["trade"]))
    }

    pub fn post(&self, account: u64, path: &str, body: &Value) -> RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(token(account, &["trade"]))
            .json(body)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await;
        res.expect("a response").text().await.expect("a text body")
    }

    /// `GET path` as `account` (scope `trade`), its JSON body.
    pub async fn get_json(&self, account: u64, path: &str) -> Value {
        self.get(account, path)
            .send()
            .await
            .expect("a response")
            .json()
            .await
            .expect("a JSON body")
    }

    /// `POST path` (`/v1/deposits`, `/v1/withdrawals`) as an operator.
    pub async fn operate(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token(900, &["operate"]))
            .json(body)
            .send()
            .await
            .expect("a response")
    }

    /// `POST /v1/orders` as the seller, with `content_type` and a body
    /// sent as given (not serialised): for what a client may get wrong.
    pub fn place_raw(&self, content_type: &str, body: impl Into<reqwest::Body>) -> RequestBuilder {
        self.client
            .post(self.url("/v1/orders"))
            .bearer_auth(token(SELLER, &["trade"]))
            .header("content-type", content_type)
            .body(body)
    }

    pub async fn place(&self, account: u64, body: Value) -> Response {
        self.post(account, "/v1/orders", &body)
            .send()
            .await
            .expect("a response")
    }

    pub async fn workflow_count(&self) -> i64 {
        self.db
            .rows("select count(*) from workflows", &[])
            .await
            .expect("a count")[0]
            .i64(0)
            .expect("an integer")
    }

    /// Polls `cond` every 50 ms until it holds; panics after 30 s.
    pub async fn wait_until<F, Fut>(&self, what: &str, cond: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !cond().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn limit_sell(price: &str, quantity: &str) -> Value {
    json!({"market": "BTC-USD", "side": "sell", "type": "limit", "price": price, "quantity": quantity, "time_in_force": "gtc"})
}

pub fn limit_buy(price: &str, quantity: &str) -> Value {
    json!({"market": "BTC-USD", "side": "buy", "type": "limit", "price": price, "quantity": quantity, "time_in_force": "gtc"})
}

/// Asserts a problem+json answer with `status` and `code`.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ctype, "application/problem+json");
    let body: Value = res.json().await.expect("a JSON problem");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    body
}

pub fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str()
        .expect("a decimal string")
        .parse()
        .expect("a decimal")
}

/// A WebSocket client of `/v1/ws`.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl TestApp {
    /// Connects to `/v1/ws` as `account` (bearer header) and subscribes to `channels`.
    pub async fn ws(&self, account: u64, channels: &[&str]) -> WsClient {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = self.base.replacen("http://", "ws://", 1) + "/v1/ws";
        let mut req = url.into_client_request().expect("a request");
        let bearer = format!("Bearer {}", token(account, &["trade"]));
        req.headers_mut()
            .insert("authorization", bearer.parse().expect("a header"));
        let (stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("a WebSocket");
        let mut ws = WsClient { stream };
        ws.send(json!({"op": "subscribe", "channels": channels}))
            .await;
        let ack = ws.next().await.expect("an answer to subscribe");
        assert_eq!(ack["type"], "subscribed", "{ack}");
        ws
    }
}

impl WsClient {
    /// Sends a JSON message.
    pub async fn send(&mut self, v: Value) {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("a sent frame");
    }

    /// The next JSON message, or `None` after 10 s of silence.
    pub async fn next(&mut self) -> Option<Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .ok()??
                .expect("a frame");
            if let Message::Text(t) = frame {
                return Some(serde_json::from_str(t.as_str()).expect("JSON"));
            }
        }
    }

    /// Reads messages until `done` holds for what was read so far; panics
    /// after 30 s.
    pub async fn read_until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while !done(&seen) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}; saw {seen:#?}"
            );
            if let Some(m) = self.next().await {
                seen.push(m);
            }
        }
        seen
    }
}
