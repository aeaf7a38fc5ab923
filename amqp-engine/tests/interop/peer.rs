//! Starting and stopping a python-qpid-proton peer script, always by its own PID.
//!
//! Shared by the test binaries of `amqp-engine` and `amqp-tokio` (the latter includes this file
//! with `#[path]`); each crate's peer script is its `tests/interop/proton_peer.py`.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The peer script.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/proton_peer.py");

/// True if `python3 -c 'import proton'` works. If not, the test fails, unless
/// `INTEROP_OPTIONAL=1`, in which case it is skipped with a message (returns false).
pub fn require_proton(scenario: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import proton"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("INTEROP_OPTIONAL").as_deref() == Ok("1") {
        eprintln!(
            "interop {scenario} SKIPPED: python3 cannot import proton \
             (pip install python-qpid-proton); INTEROP_OPTIONAL=1"
        );
        return false;
    }
    panic!(
        "interop {scenario}: python3 cannot import proton; install python-qpid-proton \
         (or set INTEROP_OPTIONAL=1 to skip)"
    );
}

/// A running peer. Dropping it kills the process (by PID) if it is still running.
pub struct ProtonPeer {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl ProtonPeer {
    /// Starts `python3 tests/interop/proton_peer.py ARGS...`.
    pub fn spawn<S: AsRef<str>>(args: &[S]) -> ProtonPeer {
        Self::spawn_with("python3", SCRIPT, args, &[])
    }

    /// Starts `PYTHON SCRIPT ARGS...` with extra environment variables `env`.
    pub fn spawn_with<S: AsRef<str>>(
        python: &str,
        script: &str,
        args: &[S],
        env: &[(&str, &str)],
    ) -> ProtonPeer {
        let mut child = Command::new(python)
            .arg("-u")
            .arg(script)
            .args(args.iter().map(|a| a.as_ref()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {python}: {e}"));
        let (tx, rx) = channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(err).read_to_string(&mut s);
            sink.lock().unwrap().push_str(&s);
        });
        ProtonPeer {
            child,
            lines: rx,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// True once the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the listener's `READY <port>` line.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<u16, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(p) = line.strip_prefix("READY ") {
                        return p.trim().parse().map_err(|e| format!("bad READY line: {e}"));
                    }
                    self.stdout.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("peer not ready after {limit:?}{}", self.diag()))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    return Err(format!("peer exited before READY{}", self.diag()));
                }
            }
        }
    }

    fn diag(&self) -> String {
        format!(
            "\n--- peer stdout:\n{}\n--- peer stderr:\n{}",
            self.stdout.join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    /// Waits (at most `limit`) for the peer to exit and returns its JSON summary (the last
    /// stdout line). On timeout the process is killed.
    pub fn finish(mut self, limit: Duration) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    self.kill();
                    self.collect(Duration::from_millis(200));
                    return Err(format!(
                        "peer still running after {limit:?}; killed{}",
                        self.diag()
                    ));
                }
                Err(e) => return Err(format!("wait for peer: {e}")),
            }
        };
        self.collect(Duration::from_secs(2));
        if std::env::var("INTEROP_DEBUG").as_deref() == Ok("1") {
            eprintln!("--- proton peer {}{}", self.child.id(), self.diag());
        }
        let last = self
            .stdout
            .iter()
            .rev()
            .find(|l| l.starts_with('{'))
            .cloned();
        match last {
            Some(l) if status.success() => {
                serde_json::from_str(&l).map_err(|e| format!("bad summary {l:?}: {e}"))
            }
            _ => Err(format!("peer exited with {status}{}", self.diag())),
        }
    }

    fn collect(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.stdout.push(l),
                Err(_) => break,
            }
        }
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's PID only.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ProtonPeer {
    fn drop(&mut self) {
        self.kill();
    }
}
