//! A listener under descriptor exhaustion (its own test binary: it lowers this process's
//! open-files limit and uses every descriptor up). The accept loop must pause instead of
//! spinning, and serve a waiting client within a second once descriptors are free again.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use amqp_tokio::{Container, Event, MessagingHandler};

struct Listen {
    port: std::sync::mpsc::Sender<u16>,
}

impl MessagingHandler for Listen {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").unwrap();
        e.container_mut().schedule(Duration::from_secs(5));
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let port = {
            let a = e.acceptor().unwrap();
            e.container().acceptor_port(a)
        }
        .unwrap();
        self.port.send(port).unwrap();
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        e.container_mut().stop();
    }
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (in clock
/// ticks of 10 ms), opened beforehand: there is no descriptor to open it with later.
fn cpu_time(proc_stat: &mut std::fs::File) -> Duration {
    use std::io::Seek;
    let mut stat = String::new();
    proc_stat.rewind().expect("rewind");
    proc_stat
        .read_to_string(&mut stat)
        .expect("/proc/self/stat");
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    Duration::from_millis((f[11] + f[12]) * 10)
}

/// Set in the child process that runs the test body under a low open-files limit.
const CHILD: &str = "AMQP_ACCEPT_BACKOFF_CHILD";

/// Runs this test again in a child process whose soft open-files limit is 256.
#[test]
fn descriptor_exhaustion_pauses_accepts_and_a_client_is_served_after_it() {
    if std::env::var_os(CHILD).is_some() {
        return under_pressure();
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\" \"$@\""])
        .arg(exe)
        .args([
            "--exact",
            "descriptor_exhaustion_pauses_accepts_and_a_client_is_served_after_it",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child failed");
    assert!(
        text.contains("1 s out of descriptors"),
        "the child ran no test"
    );
}

/// The test body, in the child: use every descriptor up while a client waits to be accepted.
fn under_pressure() {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || Container::new(Listen { port: tx }).run());
    let port = rx.recv_timeout(Duration::from_secs(10)).expect("port");
    // The client's socket exists before the pressure: connecting needs no new descriptor,
    // accepting it does.
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let mut proc_stat = std::fs::File::open("/proc/self/stat").expect("/proc/self/stat");
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    assert!(!hog.is_empty());
    client
        .connect(&addr.into())
        .expect("connect (queued by the kernel)");
    let mut client: std::net::TcpStream = client.into();
    client.write_all(b"AMQP\x00\x01\x00\x00").unwrap();
    let cpu_before = cpu_time(&mut proc_stat);
    std::thread::sleep(Duration::from_secs(1));
    let cpu = cpu_time(&mut proc_stat) - cpu_before;
    drop(hog);
    let freed = Instant::now();
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut header = [0u8; 8];
    let served = client.read_exact(&mut header).map(|()| freed.elapsed());
    println!("1 s out of descriptors: {cpu:?} CPU; client served {served:?} after");
    drop(client);
    let _ = server.join();
    assert!(
        cpu < Duration::from_millis(300),
        "the process used {cpu:?} of CPU in 1 s with the accept loop out of descriptors"
    );
    let served = served.expect("the waiting client got no answer");
    assert_eq!(&header[..4], b"AMQP");
    assert!(served < Duration::from_secs(1), "served after {served:?}");
}
