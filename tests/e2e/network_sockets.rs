//! `wasi:sockets` end to end: a step's `std::net::TcpStream` reaches a TCP
//! server on loopback when the allowlist names it (by name, looked up, or
//! by address), and nothing else: other addresses, other names, listening
//! and UDP are refused, each refusal told in the log with the flag that
//! would allow it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::util::Sandbox;

const NET_GUEST: &str = env!("KILN_GUEST_NET");

/// A loopback TCP server answering each line `WORD` with `echo WORD PORT`,
/// counting the connections it accepted.
struct Echo {
    port: u16,
    connections: Arc<AtomicUsize>,
    words: Arc<Mutex<Vec<String>>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let words = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), words.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let mut line = String::new();
                if BufReader::new(conn.try_clone().unwrap())
                    .read_line(&mut line)
                    .is_ok()
                {
                    let word = line.trim().to_string();
                    let _ = writeln!(conn, "echo {word} {port}");
                    seen.lock().unwrap().push(word);
                }
            }
        });
        Echo {
            port,
            connections,
            words,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Builds `RUN [--network=default] ["net", targets...]` with `flags`.
fn build(network: bool, targets: &[String], flags: &[&str], code: i32) -> String {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    std::fs::copy(NET_GUEST, sb.path("ctx/bin/net")).unwrap();
    let argv: Vec<&str> = std::iter::once("net")
        .chain(targets.iter().map(String::as_str))
        .collect();
    sb.write(
        "ctx/Kilnfile",
        format!(
            "FROM scratch\nCOPY bin/ /bin/\nRUN {} {}\n",
            if network { "--network=default" } else { "" },
            serde_json::to_string(&argv).unwrap()
        ),
    );
    let mut args = vec!["build", "--progress", "plain", "-t", "sockets:test"];
    args.extend_from_slice(flags);
    args.push("ctx");
    let run = sb.kiln(&args);
    let run = if code == 0 { run.ok() } else { run.fails(code) };
    format!("{}{}", run.stdout, run.stderr)
}

#[test]
fn tcp_reaches_allowed_names_and_addresses_and_nothing_else() {
    let by_name = Echo::start();
    let by_ip = Echo::start();
    let off_list = Echo::start();
    let targets = vec![
        format!("tcp://localhost:{}/named", by_name.port),
        format!("tcp://127.0.0.1:{}/literal", by_ip.port),
        format!("tcp://127.0.0.1:{}/refused", off_list.port),
        "tcp://unlisted.invalid:80/x".to_string(),
    ];
    let allow = format!("localhost:{},127.0.0.1:{}", by_name.port, by_ip.port);
    let log = build(true, &targets, &["--allow-net", &allow], 1);
    for want in [
        format!("TCP localhost:{0} -> echo named {0}", by_name.port),
        format!("TCP 127.0.0.1:{0} -> echo literal {0}", by_ip.port),
        format!("TCP 127.0.0.1:{} failed: ", off_list.port),
        format!(
            "refused connect to 127.0.0.1:{0}: not in this build's network allowlist (allow it with --allow-net 127.0.0.1:{0})",
            off_list.port
        ),
        "TCP unlisted.invalid:80 failed: ".to_string(),
        "refused lookup of unlisted.invalid: not in this build's network allowlist (allow it with --allow-net unlisted.invalid)".to_string(),
    ] {
        assert!(log.contains(&want), "{want:?} not in\n{log}");
    }
    assert_eq!(off_list.connections(), 0, "the refused server saw nothing");
    assert_eq!(*by_name.words.lock().unwrap(), ["named"]);
}

#[test]
fn a_name_allows_its_addresses_on_its_ports_only() {
    // localhost is allowed on one port: the address it resolves to is not
    // thereby open on another.
    let allowed = Echo::start();
    let other = Echo::start();
    let targets = vec![
        format!("tcp://localhost:{}/yes", allowed.port),
        format!("tcp://localhost:{}/no", other.port),
    ];
    let allow = format!("localhost:{}", allowed.port);
    let log = build(true, &targets, &["--allow-net", &allow], 1);
    assert!(
        log.contains(&format!("TCP localhost:{0} -> echo yes {0}", allowed.port)),
        "{log}"
    );
    assert!(
        log.contains(&format!("TCP localhost:{} failed: ", other.port)),
        "{log}"
    );
    assert!(
        log.contains(&format!("--allow-net 127.0.0.1:{}", other.port))
            || log.contains(&format!("--allow-net [::1]:{}", other.port)),
        "{log}"
    );
    assert_eq!(other.connections(), 0);
}

#[test]
fn listening_and_udp_are_refused() {
    let targets = vec![
        "listen://0.0.0.0:0".to_string(),
        "listen://127.0.0.1:0".to_string(),
        "udp://127.0.0.1:9".to_string(),
    ];
    let log = build(true, &targets, &["--allow-net", "127.0.0.1"], 1);
    for want in [
        "LISTEN 0.0.0.0:0 failed: ",
        "LISTEN 127.0.0.1:0 failed: ",
        "UDP 127.0.0.1:9 failed: ",
        "steps may only connect out, not listen",
    ] {
        assert!(log.contains(want), "{want:?} not in\n{log}");
    }
    assert!(!log.contains("-> bound"), "{log}");
    assert!(!log.contains("-> sent"), "{log}");
}

#[test]
fn steps_without_network_have_no_sockets() {
    let server = Echo::start();
    let targets = vec![
        format!("tcp://127.0.0.1:{}/x", server.port),
        format!("tcp://localhost:{}/y", server.port),
    ];
    let log = build(false, &targets, &["--allow-net", "127.0.0.1,localhost"], 1);
    assert!(
        log.contains(&format!("TCP 127.0.0.1:{} failed: ", server.port)),
        "{log}"
    );
    assert!(
        log.contains(&format!("TCP localhost:{} failed: ", server.port)),
        "{log}"
    );
    assert!(log.contains("this step has no network"), "{log}");
    assert!(log.contains("--network=default"), "{log}");
    assert_eq!(server.connections(), 0);
}
