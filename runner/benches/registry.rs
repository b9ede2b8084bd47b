//! Registry transfer benchmark: `kiln push` and `kiln pull` of an image
//! with one 200 MiB incompressible layer (gzip, as registries mostly
//! serve), against a local registry, compared in the same run with
//! `skopeo copy` of the same image. Goal: kiln within 1.2x of skopeo.
//!
//! The bench starts `docker-registry` (Debian's package; plain HTTP on a
//! free port, a temp dir) itself. Every push goes to a registry started
//! empty for it, so nothing is skipped or mounted; every pull goes into an
//! empty store (kiln) or a new OCI layout (skopeo). skopeo runs with
//! `--preserve-digests`, so both move the very same bytes.
//!
//! Figures, not assertions: medians of `KILN_BENCH_RUNS` runs (default 3)
//! and the kiln/skopeo ratios. `KILN_BENCH_MIB` changes the layer size.
//! Run with `cargo bench -p kiln --bench registry` (a release build).

#![allow(missing_docs, clippy::print_stdout)]

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `docker-registry` serving a temp dir on a free port; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..10 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {:?}\n\
                     http:\n  addr: 127.0.0.1:{port}\n",
                    dir.path().join("data").to_str().unwrap()
                ),
            )
            .unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker-registry (Debian package docker-registry) runs this bench");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if answers(port) {
                    return Registry {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /v2/` answers 200.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut resp = String::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_string(&mut resp).is_ok()
        && resp.lines().next().is_some_and(|l| l.contains(" 200"))
}

/// Runs a command to success; returns how long it took.
fn timed(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("running a command");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn kiln(store: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args).env("KILN_STORE", store);
    cmd
}

fn skopeo(args: &[&str]) -> Command {
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "-q", "--preserve-digests"])
        .args(args);
    cmd
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// One line of figures: medians, throughput and the ratio.
fn report(what: &str, mib: u64, kiln: Vec<Duration>, skopeo: Vec<Duration>) {
    let (k, s) = (median(kiln.clone()), median(skopeo.clone()));
    let rate = |d: Duration| mib as f64 / d.as_secs_f64();
    println!(
        "{what}: kiln {} ({:.0} MiB/s), skopeo {} ({:.0} MiB/s): kiln/skopeo {:.2}x (goal <= 1.2x)\n  \
         runs: kiln {:?}, skopeo {:?}",
        secs(k),
        rate(k),
        secs(s),
        rate(s),
        k.as_secs_f64() / s.as_secs_f64(),
        kiln.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
        skopeo.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env_num = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = env_num("KILN_BENCH_RUNS", 3).max(1) as usize;
    let mib = env_num("KILN_BENCH_MIB", 200);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");

    // The image, once: FROM scratch + COPY of random bytes, into the store
    // and as an OCI layout for skopeo.
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let mut random = fs::File::open("/dev/urandom").unwrap().take(mib << 20);
    std::io::copy(
        &mut random,
        &mut fs::File::create(ctx.join("blob.bin")).unwrap(),
    )
    .unwrap();
    fs::write(
        ctx.join("Kilnfile"),
        "FROM scratch\nCOPY blob.bin /blob.bin\n",
    )
    .unwrap();
    let layout = tmp.path().join("layout");
    let output = format!(
        "type=oci,dest={},tar=false,compression=gzip",
        layout.display()
    );
    timed(kiln(
        &store,
        &[
            "build",
            "-q",
            "-t",
            "big",
            "--output",
            &output,
            ctx.to_str().unwrap(),
        ],
    ));
    fs::remove_file(ctx.join("blob.bin")).unwrap();
    let oci_src = format!("oci:{}", layout.display());
    println!(
        "registry bench: one {mib} MiB random layer (gzip), {runs} runs each, kiln {}",
        env!("CARGO_BIN_EXE_kiln")
    );

    // Pushes, each to an empty registry; the order alternates.
    let (mut kiln_push, mut skopeo_push) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let mut one = |kiln_side: bool| {
            let registry = Registry::start();
            let dest = format!("{}/bench/push:1", registry.host());
            if kiln_side {
                kiln_push.push(timed(kiln(&store, &["push", "-q", "big", &dest])));
            } else {
                let dest = format!("docker://{dest}");
                skopeo_push.push(timed(skopeo(&["--dest-tls-verify=false", &oci_src, &dest])));
            }
        };
        one(i % 2 == 0);
        one(i % 2 == 1);
    }
    report("push", mib, kiln_push, skopeo_push);

    // Pulls from one registry, each into an empty store or layout.
    let registry = Registry::start();
    let src = format!("{}/bench/pull:1", registry.host());
    timed(kiln(&store, &["push", "-q", "big", &src]));
    let (mut kiln_pull, mut skopeo_pull) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let mut one = |kiln_side: bool| {
            let dir: PathBuf = tmp.path().join(format!("pull-{i}-{kiln_side}"));
            if kiln_side {
                kiln_pull.push(timed(kiln(&dir, &["pull", "-q", &src])));
            } else {
                let dest = format!("oci:{}:x", dir.display());
                let from = format!("docker://{src}");
                skopeo_pull.push(timed(skopeo(&["--src-tls-verify=false", &from, &dest])));
            }
            let _ = fs::remove_dir_all(&dir);
        };
        one(i % 2 == 0);
        one(i % 2 == 1);
    }
    report("pull", mib, kiln_pull, skopeo_pull);
}
