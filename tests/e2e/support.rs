//! Starting the real binary in a temp data dir and talking to it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_clearway");

/// A running `clearway up`; killed on drop if still running.
pub struct Running {
    pub child: Child,
    pub base: String,
    /// The temp dir holding the data dir and the log; kept across restarts.
    pub dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clearway` with a clean environment pointing at `dir`.
pub fn clearway(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "CLEARWAY_TRANSPORT",
        "CLEARWAY_DATABASE_URL",
        "CLEARWAY_EVENTS",
        "CLEARWAY_ARCHIVE",
        "CLEARWAY_DEV_HS256_SECRET",
        "CLEARWAY_JWKS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CLEARWAY_DATA_DIR", dir.join("data"));
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `clearway up` on a free port and waits for `/readyz`.
pub async fn start_up() -> Running {
    start_up_in(tempfile::tempdir().unwrap()).await
}

/// Starts `clearway up` on a free port over an existing data dir (a restart).
pub async fn start_up_in(dir: tempfile::TempDir) -> Running {
    start_up_with(dir, &[]).await
}

/// [`start_up_in`] with extra environment (another transport, a test hook).
pub async fn start_up_with(dir: tempfile::TempDir, env: &[(&str, String)]) -> Running {
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("up.log"))
        .unwrap();
    let child = clearway(dir.path())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["up", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("clearway starts");
    let mut running = Running {
        child,
        base: format!("http://{addr}"),
        dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{}/readyz", running.base)).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return running;
        }
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!("clearway up exited with {status}: {}", running.log());
        }
        assert!(
            Instant::now() < deadline,
            "clearway up never became ready: {}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Running {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("up.log")).unwrap_or_default()
    }

    /// `clearway token` against the same data dir: its last stdout line.
    pub fn token(&self, account: u64) -> String {
        let out = clearway(self.dir.path())
            .args(["token", "--account", &account.to_string()])
            .output()
            .expect("clearway token runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .expect("a token line")
            .trim()
            .to_string()
    }

    /// SIGKILL: no shutdown code runs. Returns the data dir for a restart.
    pub fn sigkill(mut self) -> tempfile::TempDir {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// `GET /v1/balances` with `token`: the `balances` object.
    pub async fn balances(&self, token: &str) -> serde_json::Map<String, serde_json::Value> {
        let live: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/balances", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        live["balances"].as_object().expect("balances").clone()
    }

    /// The data dir of a process that has exited (for a restart).
    pub fn into_dir(mut self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// The SQLite database of the data dir (read-only checks).
    pub fn database_url(&self) -> String {
        format!(
            "sqlite://{}?mode=ro",
            self.dir.path().join("data/clearway.db").display()
        )
    }

    /// Waits (up to `within`) until the log holds `needle`.
    pub async fn wait_log(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("clearway up exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "clearway up did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
