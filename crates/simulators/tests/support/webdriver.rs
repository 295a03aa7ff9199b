//! Headless Chromium over WebDriver, for the browser tests of several test
//! binaries (included with `#[path]`): Debian's `chromium` and `chromium-driver`,
//! which `.ci/run` installs. Without them a test fails and says so: a silently
//! skipped browser test is no test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A failsafe against a hung browser, not a performance bound: waits end as soon
/// as the awaited thing happens.
pub const GIVE_UP: Duration = Duration::from_secs(120);

/// Looks a program up on `PATH`, as a shell would (a `which` crate for five lines is
/// not worth a dependency).
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

pub fn required(program: &str) -> PathBuf {
    on_path(program).unwrap_or_else(|| {
        panic!(
            "`{program}` is not on PATH: the headless browser tests need Debian's `chromium` and \
             `chromium-driver` packages; install them with \
             `DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver` (.ci/run does this)"
        )
    })
}

/// chromedriver on a loopback port it picks itself (`--port=0`, read back from its
/// banner), so there is no window in which another process could take a port we chose.
pub struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    pub async fn start(program: &Path) -> ChromeDriver {
        let mut child = Command::new(program)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // The last resort if the test is torn down before `stop`.
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let banner = "started successfully on port ";
        let port = tokio::time::timeout(GIVE_UP, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(at) = line.find(banner) {
                    return line[at + banner.len()..].trim_end_matches('.').parse::<u16>().unwrap();
                }
            }
            panic!("chromedriver exited without saying which port it listens on");
        })
        .await
        .expect("chromedriver did not start");
        // Keep draining its output so a chatty driver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ChromeDriver { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// A new headless Chromium, `width` × `height` CSS pixels.
    pub async fn session(&self, chromium: &Path, width: u32, height: u32) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    // New headless mode: the same browser as a headed one, no window.
                    "--headless=new",
                    // CI runs as root, and Chromium refuses to start its sandbox as root.
                    "--no-sandbox",
                    "--disable-gpu",
                    // This machine's network is closed: no update checks, sync or
                    // first-run fetches that would fail and clutter the log.
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        // chromedriver listens on loopback in plain HTTP: a TLS connector would only add
        // a crypto provider to the build.
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver at {} gave no Chromium session: {e}", self.url))
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
