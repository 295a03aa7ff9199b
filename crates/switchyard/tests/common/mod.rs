//! What several test binaries share: `switchyard sandbox` as a child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// `switchyard sandbox --json [args]` in its own process (so the vendor outlives
/// server restarts), with the credentials it printed; killed when dropped.
pub struct Sandbox {
    child: Child,
    pub credentials: Value,
}

impl Sandbox {
    pub fn start(args: &[&str]) -> Sandbox {
        let mut child = Command::new(BIN)
            .args(["sandbox", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let credentials = serde_json::from_str(&line).expect("the first line is the credentials JSON");
        Sandbox { child, credentials }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
