//! Every example, run as the built binary against the example broker (on a free loopback
//! port) or against another example, with its output checked as Proton's own
//! `test_examples.py` checks the Python ones. Each run is bounded in time; children are killed
//! by PID when a test ends.

mod common;

use std::time::Duration;

use common::{broker, free_port, run, sequence_lines, Proc, LIMIT};

const JABBERWOCKY: [&str; 4] = [
    "Twas brillig, and the slithy toves",
    "Did gire and gymble in the wabe.",
    "All mimsy were the borogroves,",
    "And the mome raths outgrabe.",
];

fn client_expected() -> Vec<String> {
    JABBERWOCKY
        .iter()
        .map(|l| format!("{l} => {}", l.to_uppercase()))
        .collect()
}

#[test]
fn helloworld_needs_no_broker() {
    let o = run("helloworld", &[]);
    assert_eq!(o.stdout, ["Hello World!"]);
    eprintln!("helloworld (in-process broker): {:?}", o.elapsed);
}

#[test]
fn helloworld_with_broker() {
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("helloworld", &["-a", &a]);
    assert_eq!(o.stdout, ["Hello World!"]);
}

#[test]
fn helloworld_direct() {
    let o = run("helloworld_direct", &["-a", "127.0.0.1:0/examples"]);
    assert_eq!(o.stdout, ["Hello World!"]);
}

#[test]
fn simple_send_then_simple_recv() {
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("simple_send", &["-a", &a, "-m", "100"]);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = run("simple_recv", &["-a", &a, "-m", "100"]);
    assert_eq!(o.stdout, sequence_lines(100));
}

#[test]
fn simple_recv_waits_for_simple_send() {
    // Proton's test_simple_send_recv: the receiver first, then the sender, default counts.
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let r = Proc::example("simple_recv", &["-a", &a]);
    std::thread::sleep(Duration::from_millis(200));
    run("simple_send", &["-a", &a]);
    let o = r.wait(LIMIT);
    assert!(o.status.success());
    assert_eq!(o.stdout, sequence_lines(100));
}

#[test]
fn simple_send_reconnects_until_the_broker_is_up() {
    // Nothing listens yet: the sender retries (Proton's default reconnect) and delivers
    // everything once the broker starts on that port.
    let port = free_port();
    let a = format!("127.0.0.1:{port}/examples");
    let s = Proc::example("simple_send", &["-a", &a, "-m", "20"]);
    std::thread::sleep(Duration::from_millis(500));
    let listen = format!("127.0.0.1:{port}");
    let _b = Proc::example("broker", &["-a", &listen]);
    let o = s.wait(LIMIT);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = run("simple_recv", &["-a", &a, "-m", "20"]);
    assert_eq!(o.stdout, sequence_lines(20));
}

#[test]
fn simple_send_to_direct_recv() {
    let r = Proc::example("direct_recv", &["-a", "127.0.0.1:0/examples", "-m", "100"]);
    let port = r.listening_port();
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("simple_send", &["-a", &a]);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = r.wait(LIMIT);
    assert!(o.status.success());
    assert_eq!(o.stdout, sequence_lines(100));
}

#[test]
fn direct_send_to_simple_recv() {
    let s = Proc::example("direct_send", &["-a", "127.0.0.1:0/examples", "-m", "100"]);
    let port = s.listening_port();
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("simple_recv", &["-a", &a]);
    assert_eq!(o.stdout, sequence_lines(100));
    let o = s.wait(LIMIT);
    assert!(o.status.success());
    assert_eq!(o.stdout, ["all messages confirmed"]);
}

#[test]
fn client_and_server_through_the_broker() {
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let s = Proc::example("server", &["-a", &a]);
    s.wait_line(Duration::from_secs(10), |l| l.starts_with("Listening on"))
        .expect("server started");
    let o = run("client", &["-a", &a]);
    assert_eq!(o.stdout, client_expected());
    let received: Vec<String> = s
        .stdout()
        .into_iter()
        .filter(|l| l.starts_with("Received"))
        .collect();
    assert_eq!(received.len(), 4, "{received:?}");
    assert!(received[0].contains("body='Twas brillig, and the slithy toves'"));
}

#[test]
fn client_with_arguments() {
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let _s = Proc::example("server", &["-a", &a]);
    let o = run("client", &["-a", &a, "one", "two words"]);
    assert_eq!(o.stdout, ["one => ONE", "two words => TWO WORDS"]);
}

#[test]
fn client_and_server_direct() {
    let s = Proc::example("server_direct", &["-a", "127.0.0.1:0"]);
    let port = s.listening_port();
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("client", &["-a", &a]);
    assert_eq!(o.stdout, client_expected());
}

#[test]
fn colour_send_and_selected_recv() {
    // Proton's test_selected_recv: greens for the selector, then the reds for anyone.
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("colour_send", &["-a", &a]);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = run("selected_recv", &["-a", &a, "-m", "50"]);
    let greens: Vec<String> = (0..100)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("green {}", i + 1))
        .collect();
    assert_eq!(o.stdout, greens);
    let o = run("simple_recv", &["-a", &a, "-m", "50"]);
    let reds: Vec<String> = (0..100)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("red {}", i + 1))
        .collect();
    assert_eq!(o.stdout, reds);
}

#[test]
fn queue_browser_sees_all_and_leaves_them() {
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    // More than one drain batch (100).
    run("simple_send", &["-a", &a, "-m", "150"]);
    let o = run("queue_browser", &["-a", &a]);
    let expected: Vec<String> = (1..=150)
        .map(|i| format!("Message(priority=4, id={i}, body={{'sequence': {i}}})"))
        .collect();
    assert_eq!(o.stdout, expected);
    // Browsing again shows the same; consuming still gets them all.
    let o = run("queue_browser", &["-a", &a]);
    assert_eq!(o.stdout.len(), 150);
    let o = run("simple_recv", &["-a", &a, "-m", "150"]);
    assert_eq!(o.stdout, sequence_lines(150));
    // Now the queue is empty.
    let o = run("queue_browser", &["-a", &a]);
    assert!(o.stdout.is_empty(), "{:?}", o.stdout);
}

#[test]
fn recurring_timer_ticks() {
    let o = run("recurring_timer", &["-p", "0.1", "-t", "0.55"]);
    assert!(
        (3..=6).contains(&o.stdout.len()) && o.stdout.iter().all(|l| l == "Tick..."),
        "{:?}",
        o.stdout
    );
    assert!(o.elapsed < Duration::from_secs(10));
}

#[test]
fn help_and_bad_flags() {
    for name in [
        "helloworld",
        "helloworld_direct",
        "simple_send",
        "simple_recv",
        "direct_send",
        "direct_recv",
        "client",
        "server",
        "server_direct",
        "colour_send",
        "selected_recv",
        "queue_browser",
        "recurring_timer",
        "broker",
    ] {
        let o = run(name, &["--help"]);
        assert!(
            o.stdout.first().is_some_and(|l| l.starts_with("Usage:")),
            "{name}: {:?}",
            o.stdout
        );
        let o = Proc::example(name, &["--no-such-flag"]).wait(LIMIT);
        assert_eq!(o.status.code(), Some(2), "{name}");
    }
    let o = run("simple_send", &["--help"]);
    let help = o.stdout.join("\n");
    assert!(help.contains("-a, --address <ADDRESS>"), "{help}");
    assert!(help.contains("-m, --messages <MESSAGES>"), "{help}");
    assert!(
        help.contains("[default: localhost:5672/examples]"),
        "{help}"
    );
    assert!(help.contains("[default: 100]"), "{help}");
}

#[test]
fn blocking_send_then_blocking_recv() {
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("blocking_send", &["-a", &a, "-m", "100"]);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = run("blocking_recv", &["-a", &a, "-m", "100"]);
    assert_eq!(o.stdout, sequence_lines(100));
}

#[test]
fn blocking_send_to_simple_recv_and_simple_send_to_blocking_recv() {
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("blocking_send", &["-a", &a, "-m", "20"]);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = run("simple_recv", &["-a", &a, "-m", "20"]);
    assert_eq!(o.stdout, sequence_lines(20));
    let o = run("simple_send", &["-a", &a, "-m", "20"]);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = run("blocking_recv", &["-a", &a, "-m", "20"]);
    assert_eq!(o.stdout, sequence_lines(20));
}

#[test]
fn blocking_request_and_server_through_the_broker() {
    let (_b, port) = broker(&[]);
    let a = format!("127.0.0.1:{port}/examples");
    let s = Proc::example("server", &["-a", &a]);
    s.wait_line(Duration::from_secs(10), |l| l.starts_with("Listening on"))
        .expect("server started");
    let o = run("blocking_request", &["-a", &a]);
    assert_eq!(o.stdout, client_expected());
}
