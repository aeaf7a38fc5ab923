//! Running the example binaries (and python-qpid-proton clients) as child processes, always
//! bounded in time and killed by PID when a test is done with them.

#![allow(dead_code, unreachable_pub)]

pub mod matrix;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any one example run may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The path of an example binary.
pub fn bin(name: &str) -> &'static str {
    match name {
        "blocking_recv" => env!("CARGO_BIN_EXE_blocking_recv"),
        "blocking_request" => env!("CARGO_BIN_EXE_blocking_request"),
        "blocking_send" => env!("CARGO_BIN_EXE_blocking_send"),
        "broker" => env!("CARGO_BIN_EXE_broker"),
        "client" => env!("CARGO_BIN_EXE_client"),
        "colour_send" => env!("CARGO_BIN_EXE_colour_send"),
        "direct_recv" => env!("CARGO_BIN_EXE_direct_recv"),
        "direct_send" => env!("CARGO_BIN_EXE_direct_send"),
        "helloworld" => env!("CARGO_BIN_EXE_helloworld"),
        "helloworld_direct" => env!("CARGO_BIN_EXE_helloworld_direct"),
        "queue_browser" => env!("CARGO_BIN_EXE_queue_browser"),
        "recurring_timer" => env!("CARGO_BIN_EXE_recurring_timer"),
        "selected_recv" => env!("CARGO_BIN_EXE_selected_recv"),
        "server" => env!("CARGO_BIN_EXE_server"),
        "server_direct" => env!("CARGO_BIN_EXE_server_direct"),
        "simple_recv" => env!("CARGO_BIN_EXE_simple_recv"),
        "simple_send" => env!("CARGO_BIN_EXE_simple_send"),
        other => panic!("no example {other}"),
    }
}

#[derive(Default)]
struct Lines {
    out: Vec<String>,
    err: Vec<String>,
    closed: usize,
}

/// A running child process. Dropping it kills the process (by PID) if it still runs.
pub struct Proc {
    name: String,
    child: Child,
    lines: Arc<(Mutex<Lines>, Condvar)>,
    started: Instant,
}

/// A finished run.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub elapsed: Duration,
}

impl Proc {
    /// Starts an example binary.
    pub fn example(name: &str, args: &[&str]) -> Proc {
        Proc::spawn(name, Command::new(bin(name)).args(args))
    }

    /// Starts any command.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let lines = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, is_err) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, false),
            (Box::new(err), true),
        ] {
            let l = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (m, cv) = &*l;
                    let mut g = m.lock().unwrap();
                    if is_err {
                        g.err.push(line);
                    } else {
                        g.out.push(line);
                    }
                    cv.notify_all();
                }
                let (m, cv) = &*l;
                m.lock().unwrap().closed += 1;
                cv.notify_all();
            });
        }
        Proc {
            name: name.to_string(),
            child,
            lines,
            started: Instant::now(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line of stdout or stderr satisfies `pred`; returns it.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.lines;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(l) = g.out.iter().chain(g.err.iter()).find(|l| pred(l)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline || g.closed == 2 {
                return None;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// The port in the `Listening on …:PORT` line the listening examples print.
    pub fn listening_port(&self) -> u16 {
        let line = self
            .wait_line(Duration::from_secs(20), |l| l.starts_with("Listening on"))
            .unwrap_or_else(|| {
                panic!(
                    "{} did not say it was listening; stderr: {:?}",
                    self.name,
                    self.stderr()
                )
            });
        let hostport = line
            .trim_start_matches("Listening on ")
            .rsplit("://")
            .next()
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("");
        hostport
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// Lines printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().out.clone()
    }

    /// Lines printed on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().err.clone()
    }

    /// Waits for the process to exit (panics, after killing it, if it takes longer than
    /// `timeout`), then for its output to be read.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} (pid {}) did not finish within {timeout:?}; stdout so far: {:?}; stderr: {:?}",
                    self.name,
                    self.child.id(),
                    tail(&self.stdout()),
                    tail(&self.stderr())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The readers end at EOF, right after exit.
        let (m, cv) = &*self.lines;
        let mut g = m.lock().unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while g.closed < 2 && Instant::now() < end {
            g = cv.wait_timeout(g, Duration::from_millis(50)).unwrap().0;
        }
        Output {
            status,
            stdout: g.out.clone(),
            stderr: g.err.clone(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process (by PID), reaps it, and waits (at most 2 s) until its output is read
    /// to the end, so `stdout()` then holds every line it wrote before it died.
    pub fn kill(&mut self) {
        self.stop();
        let (m, cv) = &*self.lines;
        let mut g = m.lock().unwrap();
        let end = Instant::now() + Duration::from_secs(2);
        while g.closed < 2 && Instant::now() < end {
            g = cv.wait_timeout(g, Duration::from_millis(20)).unwrap().0;
        }
    }

    /// Kills the process (by PID) and reaps it.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Already gone is fine: the point is that it no longer runs.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn tail(v: &[String]) -> Vec<String> {
    v.iter().rev().take(10).rev().cloned().collect()
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs an example to completion (bounded by [`LIMIT`]) and checks it exited successfully.
pub fn run(name: &str, args: &[&str]) -> Output {
    let o = Proc::example(name, args).wait(LIMIT);
    assert!(
        o.status.success(),
        "{name} {args:?} failed: {:?}; stderr: {:?}",
        o.status,
        o.stderr
    );
    o
}

/// Starts the example broker on a free loopback port; returns it and its port.
pub fn broker(extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["-a", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let p = Proc::example("broker", &args);
    let port = p.listening_port();
    (p, port)
}

/// `{'sequence': 1}` … `{'sequence': n}`, as `simple_recv` prints them.
pub fn sequence_lines(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{{'sequence': {i}}}")).collect()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// True when `python3` can import python-qpid-proton. Without it the test fails, unless
/// `INTEROP_OPTIONAL=1` (then it is skipped with a line saying so).
pub fn proton_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import proton"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("INTEROP_OPTIONAL").as_deref() == Ok("1") {
        eprintln!("{test} SKIPPED: python3 cannot import proton; INTEROP_OPTIONAL=1");
        return false;
    }
    panic!(
        "{test}: python3 cannot import proton; pip install python-qpid-proton \
         (or set INTEROP_OPTIONAL=1 to skip)"
    );
}
