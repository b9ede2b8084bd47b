//! `probe`: a guest program that does to its filesystem what the arguments
//! say, so tests can drive every kind of change from a Kilnfile or `kiln run`.
//!
//! Operations are separated by `--`, e.g. `probe write /a x -- mv /a /b -- ls /`.
//! Each prints what it observed on stdout; errors go to stderr with the OS
//! error, and make the program exit with code 1 (or the code of `exit N`).
//!
//! A first operation `nocd` skips the change to `$PWD` at start, so the
//! program resolves relative paths as any wasi-libc program does that never
//! calls `chdir`: `probe nocd -- cat file.txt`.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // wasi-libc starts every program in `/`; kiln passes the step's WORKDIR
    // as PWD (and as wasip2's initial-cwd), which programs honour this way.
    if args.first().map(String::as_str) != Some("nocd")
        && let Ok(pwd) = std::env::var("PWD")
    {
        let _ = std::env::set_current_dir(pwd);
    }
    for op in args.split(|a| a == "--") {
        if op.is_empty() {
            continue;
        }
        if let Err(e) = run(op) {
            eprintln!("probe {}: {e}", op.join(" "));
            std::process::exit(1);
        }
    }
}

fn run(op: &[String]) -> std::io::Result<()> {
    let arg = |i: usize| op.get(i).map(String::as_str).unwrap_or("");
    let out = &mut std::io::stdout();
    match arg(0) {
        "echo" => writeln!(out, "{}", op[1..].join(" "))?,
        "args" => {
            for a in std::env::args() {
                writeln!(out, "{a}")?;
            }
        }
        "env" => {
            let mut vars: Vec<(String, String)> = std::env::vars().collect();
            vars.sort();
            for (k, v) in vars {
                writeln!(out, "{k}={v}")?;
            }
        }
        "pwd" => writeln!(out, "{}", std::env::current_dir()?.display())?,
        "cat" => out.write_all(&fs::read(arg(1))?)?,
        "write" => fs::write(arg(1), arg(2))?,
        "append" => fs::OpenOptions::new().append(true).create(true).open(arg(1))?.write_all(arg(2).as_bytes())?,
        "mkdir" => fs::create_dir_all(arg(1))?,
        "rm" => fs::remove_file(arg(1))?,
        "rmdir" => fs::remove_dir(arg(1))?,
        "rm-r" => fs::remove_dir_all(arg(1))?,
        "mv" => fs::rename(arg(1), arg(2))?,
        "ln" => fs::hard_link(arg(1), arg(2))?,
        "ln-s" => symlink(arg(1), arg(2))?,
        "readlink" => writeln!(out, "{}", fs::read_link(arg(1))?.display())?,
        "ls" => {
            let mut names: Vec<String> = fs::read_dir(arg(1))?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()?;
            // No sort: the order is the host's (kiln's VFS sorts).
            names.retain(|n| !n.is_empty());
            writeln!(out, "{}", names.join(" "))?
        }
        "stat" => {
            let m = fs::symlink_metadata(arg(1))?;
            let kind = if m.is_dir() { "dir" } else if m.is_symlink() { "symlink" } else { "file" };
            writeln!(out, "{kind} {}", m.len())?
        }
        "exists" => writeln!(out, "{}", Path::new(arg(1)).exists())?,
        "big" => {
            let mib: u64 = arg(2).parse().unwrap_or(1);
            let mut f = fs::File::create(arg(1))?;
            let mut chunk = vec![0u8; 1 << 20];
            for i in 0..mib {
                for (j, b) in chunk.iter_mut().enumerate() {
                    *b = (i as usize).wrapping_mul(31).wrapping_add(j) as u8;
                }
                f.write_all(&chunk)?;
            }
        }
        // Appends MiB of filler to a file (a big output after, say, a token).
        "pad" => {
            let mib: u64 = arg(2).parse().unwrap_or(1);
            let mut f = fs::OpenOptions::new().append(true).create(true).open(arg(1))?;
            let chunk: Vec<u8> = (0..1u32 << 20).map(|j| (j % 251) as u8).collect();
            for _ in 0..mib {
                f.write_all(&chunk)?;
            }
        }
        // Names a file and a symlink target after a file's contents: what a
        // careless step does with a token (`touch /out/$TOKEN`).
        "name-from" => {
            let name = fs::read_to_string(arg(1))?;
            fs::create_dir_all(arg(2))?;
            fs::write(format!("{}/{}", arg(2), name.trim()), "x")?;
            symlink(&format!("/opt/{}", name.trim()), &format!("{}/link", arg(2)))?;
        }
        "sum" => {
            let mut f = fs::File::open(arg(1))?;
            let mut buf = vec![0u8; 1 << 20];
            let (mut n, mut sum) = (0u64, 0u64);
            loop {
                let got = f.read(&mut buf)?;
                if got == 0 {
                    break;
                }
                n += got as u64;
                sum = buf[..got].iter().fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)));
            }
            writeln!(out, "{n} {sum:x}")?
        }
        "many" => {
            let n: usize = arg(2).parse().unwrap_or(1);
            fs::create_dir_all(arg(1))?;
            for i in 0..n {
                fs::write(format!("{}/f{i}", arg(1)), i.to_string())?;
            }
        }
        // Opens every file of a directory and keeps them all open, then
        // reads each: a guest holding more files than the host may open.
        "open-all" => {
            let mut files = Vec::new();
            for e in fs::read_dir(arg(1))? {
                files.push(fs::File::open(e?.path())?);
            }
            let mut bytes = 0;
            for f in &mut files {
                let mut buf = Vec::new();
                bytes += f.read_to_end(&mut buf)?;
            }
            writeln!(out, "{} files {bytes} bytes", files.len())?
        }
        // Writes N files of K KiB each (byte j of file i is i + j).
        "fill" => {
            let (n, kib): (usize, usize) = (arg(2).parse().unwrap_or(1), arg(3).parse().unwrap_or(1));
            fs::create_dir_all(arg(1))?;
            for i in 0..n {
                let data: Vec<u8> = (0..kib << 10).map(|j| (i + j) as u8).collect();
                fs::write(format!("{}/f{i}", arg(1)), data)?;
            }
        }
        // Reads every file of a directory, one after another (a tree walk).
        "read-all" => {
            let (mut files, mut bytes) = (0, 0);
            for e in fs::read_dir(arg(1))? {
                bytes += fs::read(e?.path())?.len();
                files += 1;
            }
            writeln!(out, "{files} files {bytes} bytes")?
        }
        "stderr" => eprintln!("{}", op[1..].join(" ")),
        "exit" => std::process::exit(arg(1).parse().unwrap_or(1)),
        "trap" => std::process::abort(),
        "panic" => panic!("probe was asked to panic"),
        "alloc" => {
            let mib: usize = arg(1).parse().unwrap_or(1);
            let mut v: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib {
                v.push(vec![1u8; 1 << 20]);
            }
            writeln!(out, "allocated {}", v.len())?
        }
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        // Keeps a core busy for the given milliseconds (CPU-bound work).
        "burn" => {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(arg(1).parse().unwrap_or(0));
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
        }
        "sleep" => std::thread::sleep(std::time::Duration::from_millis(arg(1).parse().unwrap_or(0))),
        "time" => writeln!(out, "{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())?,
        "random" => {
            let mut b = [0u8; 16];
            getrandom(&mut b);
            writeln!(out, "{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())?
        }
        // Writes the time (nanoseconds) and random bytes into a file: what
        // a build step embedding a timestamp or a nonce does.
        "stamp" => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            let mut b = [0u8; 16];
            getrandom(&mut b);
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            fs::write(arg(1), format!("{} {hex}\n", now.as_nanos()))?
        }
        "noop" | "nocd" => {}
        // Writes something derived from a file's bytes (their length and a
        // hash), never the bytes: what a well-behaved step does with a token.
        "derive" => {
            let data = fs::read(arg(1))?;
            fs::write(arg(2), derive(&data))?;
        }
        "derive-env" => {
            let data = std::env::var(arg(1)).map_err(|_| std::io::Error::other(format!("{} is not set", arg(1))))?;
            fs::write(arg(2), derive(data.as_bytes()))?;
        }
        "copy" => {
            fs::copy(arg(1), arg(2))?;
        }
        "getenv" => writeln!(out, "{}", std::env::var(arg(1)).unwrap_or_default())?,
        // Stands in for a shell in tests: `probe -c SCRIPT` prints the script.
        "-c" => writeln!(out, "sh -c {}", op[1..].join(" "))?,
        other => {
            eprintln!("probe: unknown operation {other:?}");
            std::process::exit(2);
        }
    }
    Ok(())
}

#[cfg(target_os = "wasi")]
fn symlink(target: &str, link: &str) -> std::io::Result<()> {
    // std's wasi symlink is unstable; wasi-libc's symlink(3) is what it calls.
    unsafe extern "C" {
        fn symlink(target: *const std::ffi::c_char, link: *const std::ffi::c_char) -> std::ffi::c_int;
    }
    let t = std::ffi::CString::new(target)?;
    let l = std::ffi::CString::new(link)?;
    // SAFETY: both are valid NUL-terminated strings for the call's duration.
    if unsafe { symlink(t.as_ptr(), l.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "wasi"))]
fn symlink(_target: &str, _link: &str) -> std::io::Result<()> {
    Err(std::io::Error::other("symlinks are only tested on wasi"))
}

/// Random bytes through std's hash seeds would not be raw; read them from
/// the WASI random source via a HashMap seed instead of a dependency.
fn getrandom(buf: &mut [u8]) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    for chunk in buf.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u8(0);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn derive(data: &[u8]) -> String {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    format!("{} bytes, fnv {hash:016x}\n", data.len())
}
