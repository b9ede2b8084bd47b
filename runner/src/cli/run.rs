//! `kiln run`: one program of an image, on an upper layer thrown away
//! afterwards, with the terminal's streams; its exit code is kiln's.
//!
//! Exit codes: the program's own; 127 when the program is not found (as a
//! shell does); 130 on Ctrl-C (143 on SIGTERM, 129 on SIGHUP); 1 when it traps or hits a limit (with the
//! reason on stderr); 2 for a bad invocation.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;

use super::printer::Printer;
use super::{RunArgs, UsageError};
use crate::exec::{Engine, Outcome};
use crate::frontend::{Mount, MountType};
use crate::image::Image;
use crate::snapshot::{ImagePath, Snapshot};
use crate::step::{self, StepError, StepSpec};
use crate::store::Store;
use crate::vfs::{HostFs, OverlayFs, Vfs, WriteLimits};

pub(super) fn run(
    store: &Store,
    args: RunArgs,
    printer: &Printer,
    cancel: Arc<AtomicBool>,
) -> Result<ExitCode> {
    let usage = |m: String| anyhow::Error::from(UsageError(m));
    let (snapshot, config) = if args.image == "scratch" {
        (Snapshot::empty(), None)
    } else {
        let desc = store.resolve(&args.image)?;
        let image = Image::load(store, &desc, None)?;
        (image.snapshot(store)?, image.config.config().clone())
    };
    let entrypoint = config
        .as_ref()
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    let cmd = if args.command.is_empty() {
        config
            .as_ref()
            .and_then(|c| c.cmd().clone())
            .unwrap_or_default()
    } else {
        args.command.clone()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(usage(format!(
            "{} has no ENTRYPOINT or CMD: give the program to run, like `kiln run {} /bin/tool.wasm`",
            args.image, args.image
        )));
    }
    let mut env = crate::image::env_pairs(config.as_ref());
    for e in &args.env {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(e) {
                Ok(v) => (e.clone(), v),
                Err(_) => continue,
            },
        };
        if k.is_empty() {
            return Err(usage(format!("-e {e:?}: expected KEY=VALUE")));
        }
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }
    let workdir = match &args.workdir {
        Some(w) => w.clone(),
        None => config
            .as_ref()
            .and_then(|c| c.working_dir().clone())
            .unwrap_or_else(|| "/".into()),
    };
    let cwd = ImagePath::parse(&workdir).map_err(|e| usage(format!("-w {workdir}: {e}")))?;
    let secrets = super::load_secrets(&args.secrets, args.secret_max_size, printer, &cancel)?;
    let scanner = crate::secrets::LeakScanner::new(secrets.all().map(|s| &**s)).map(Arc::new);

    let limits = args.limits.limits();
    let lower = Arc::new(snapshot);
    // A damaged object the program meets is said after it ends.
    let watched = store.watched();
    let overlay = OverlayFs::new(
        Arc::clone(&lower),
        watched.clone(),
        1,
        crate::vfs::system_clock(),
    );
    let mut vfs = Vfs::new(overlay);
    // One budget for everything the program writes, mounts included.
    vfs.set_write_limits(WriteLimits {
        max_bytes: limits.max_write,
        max_files: limits.max_files,
    });
    let mut secret_mounts = Vec::new();
    for (i, spec) in args.mounts.iter().enumerate() {
        let m = Mount::parse(spec).map_err(|(_, e)| usage(format!("--mount {spec}: {e}")))?;
        if m.kind == MountType::Secret {
            secret_mounts.push(m);
            continue;
        }
        attach(store, &mut vfs, &m, &cwd, 2 + i as u64)
            .map_err(|e| usage(format!("--mount {spec}: {e}")))?;
    }
    let refs: Vec<&Mount> = secret_mounts.iter().collect();
    let attached = crate::secrets::mount::attach(&mut vfs, &secrets, &refs, &cwd, &lower, 100)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for id in &attached.missing {
        printer.warn(&format!(
            "secret {id:?} was not provided; running without it"
        ));
    }
    env.extend(attached.env);

    let network = match args.network {
        super::NetworkMode::None => None,
        super::NetworkMode::Default => {
            let opts = args.net.options()?;
            if opts.allow.is_empty() {
                return Err(usage(format!(
                    "--network default: {}",
                    crate::network::EMPTY_ALLOWLIST
                )));
            }
            let mut bound = Vec::new();
            for m in &secret_mounts {
                if let (Some(id), Some(_)) = (&m.id, &m.origin)
                    && let Some(secret) = secrets.get(id)
                    && let Some(b) = crate::network::bind(m, secret.clone())
                {
                    bound.push(b);
                }
            }
            let log: crate::network::NetLog = Arc::new(std::sync::Mutex::new(
                crate::build::masked(io::stderr(), scanner.clone()),
            ));
            Some(Arc::new(opts.policy(bound, Some(log)).map_err(usage)?))
        }
    };
    if network.is_none()
        && let Some(id) = secret_mounts
            .iter()
            .find(|m| m.origin.is_some())
            .and_then(|m| m.id.as_deref())
    {
        return Err(usage(crate::network::bound_without_network(id)));
    }
    let net_log: crate::network::NetLog = Arc::new(std::sync::Mutex::new(crate::build::masked(
        io::stderr(),
        scanner.clone(),
    )));

    let _lock = store.lock_shared()?;
    let engine = Engine::new().map_err(|e| anyhow::anyhow!("starting the wasm engine: {e:#}"))?;
    let terminal = io::stdout().is_terminal();
    let spec = StepSpec {
        argv,
        env,
        cwd,
        limits,
        preopens: attached.preopens,
        reproducible: None,
        network,
        net_log: Some(net_log),
    };
    let stdio = crate::wasi::Stdio {
        stdin: Box::new(io::stdin()),
        stdout: crate::build::masked(io::stdout(), scanner.clone()),
        stderr: crate::build::masked(io::stderr(), scanner),
        terminal,
    };
    let finished = step::run(&engine, store, vfs, spec, stdio, cancel);
    let damaged = watched.damage();
    if let Some(damage) = &damaged {
        printer.error(&anyhow::Error::from(damage.clone()));
    }
    match finished {
        Err(e @ StepError::NotFound { .. }) => {
            printer.error(&anyhow::Error::from(e));
            Ok(ExitCode::from(127))
        }
        Err(StepError::Cancelled) => {
            printer.error(&anyhow::anyhow!("cancelled"));
            Ok(ExitCode::from(super::signals::exit_code() as u8))
        }
        Err(e) => Err(e.into()),
        Ok(f) => Ok(match f.outcome {
            // A program that read damaged bytes did not do its job, even
            // if it says it did.
            Outcome::Exit(0) if damaged.is_some() => ExitCode::FAILURE,
            Outcome::Exit(code) => ExitCode::from(code as u8),
            Outcome::Trap(trap) => {
                printer.error(&anyhow::anyhow!("{} trapped: {trap}", f.program));
                ExitCode::FAILURE
            }
            Outcome::Limit(limit) => {
                printer.error(&anyhow::anyhow!("{}", crate::exec::describe_limit(&limit)));
                ExitCode::FAILURE
            }
            Outcome::Cancelled => {
                printer.error(&anyhow::anyhow!("cancelled"));
                ExitCode::from(super::signals::exit_code() as u8)
            }
        }),
    }
}

/// Attaches a `--mount` of `kiln run`: bind mounts take host directories.
fn attach(
    store: &Store,
    vfs: &mut Vfs,
    m: &Mount,
    cwd: &ImagePath,
    dev: u64,
) -> Result<(), String> {
    let target =
        ImagePath::resolve(cwd, m.target.as_deref().unwrap_or("/")).map_err(|e| e.to_string())?;
    let clock = crate::vfs::system_clock();
    match m.kind {
        MountType::Tmpfs => {
            let fs = crate::vfs::tmpfs(store.clone(), dev, clock, m.size);
            vfs.mount(&target, Box::new(fs), true)
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        MountType::Bind => {
            if m.from.is_some() {
                return Err(
                    "kiln run binds host directories: use source=/host/dir, not from=".into(),
                );
            }
            let source = PathBuf::from(
                m.source
                    .as_deref()
                    .ok_or("a bind mount needs source=/host/dir")?,
            );
            if !source.is_dir() {
                return Err(format!("{} is not a directory", source.display()));
            }
            let fs = HostFs::open(&source, m.is_readonly(), dev)
                .map_err(|e| format!("{}: {e}", source.display()))?;
            vfs.mount(&target, Box::new(fs), true)
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        MountType::Cache => {
            let id = m.id.clone().unwrap_or_else(|| target.absolute());
            let dir = store.cache_dir(&id).map_err(|e| e.to_string())?;
            let fs = HostFs::open(&dir, m.is_readonly(), dev).map_err(|e| e.to_string())?;
            vfs.mount(&target, Box::new(fs), true)
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        other => Err(format!(
            "type={other} mounts need an SSH agent and the network, which kiln steps do not have"
        )),
    }
}
