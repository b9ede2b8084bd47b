//! The `kiln` command line: clap definitions, and the one place that turns
//! errors into messages and exit codes.
//!
//! Exit codes: 0 success, 1 the command ran and failed (a build error, a
//! missing image), 2 the invocation was wrong (a bad flag or value). Every
//! error prints as `error: ...` with its causes and, where one helps, a
//! `hint:`. Each command lives in `commands.rs`; all output goes through
//! [`printer::Printer`].

mod build_push;
mod check;
mod commands;
mod images;
mod load_save;
pub mod printer;
pub mod publish;
pub mod registry;
mod run;
mod signals;
mod transfers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use printer::{Printer, ProgressMode};

/// Environment variable naming the store directory.
pub const STORE_ENV: &str = "KILN_STORE";

/// kiln builds OCI images whose RUN steps are WebAssembly programs.
#[derive(Parser, Debug)]
#[command(name = "kiln", bin_name = "kiln", version, max_term_width = 100)]
pub struct Cli {
    /// The store: an OCI image layout plus kiln's caches [default: kiln in
    /// the user's data directory]
    #[arg(long, global = true, env = STORE_ENV, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// How registries are reached.
    #[command(flatten)]
    pub registry: registry::RegistryFlags,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
// Parsed once per process, so the size of the largest variant costs
// nothing. Clippy sees it only on Windows, where a path (`OsString`) is
// bigger than on Unix and tips `BuildArgs` over its threshold.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a Kilnfile
    Build(BuildArgs),
    /// List images in the store
    Images,
    /// Show the history of an image
    History(HistoryArgs),
    /// Show an image's manifest and config as JSON
    Inspect(ImageArg),
    /// Write an image as an OCI archive
    Export(ExportArgs),
    /// Load images from a `docker save` archive or an OCI archive into the store
    Load(load_save::LoadArgs),
    /// Write images as an archive `docker load` reads (standard output, or -o FILE)
    Save(load_save::SaveArgs),
    /// Remove images (their data goes with the next prune)
    Rmi(RmiArgs),
    /// Delete data no image and no step cache entry uses (and trim the cache)
    Prune(PruneArgs),
    /// Run a program of an image (or of `scratch` with mounts) once
    Run(RunArgs),
    /// Verify every object of the store against its digest (and repair it)
    Check(CheckArgs),
    /// Pull an image from a registry into the store
    Pull(registry::PullArgs),
    /// Push an image from the store to a registry
    Push(registry::PushArgs),
    /// Give an image in the store another name
    Tag(registry::TagArgs),
    /// Publish a wasm step program to a registry, as a wasm OCI artifact
    Publish(publish::PublishArgs),
    /// Save credentials for a registry (checked with it first)
    Login(registry::LoginArgs),
    /// Remove the saved credentials for a registry
    Logout(registry::LogoutArgs),
}

/// `kiln check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Rebuild what can be rebuilt from intact data (layer indexes, file
    /// contents) and remove what cannot (damaged blobs, cache entries, and
    /// images that can no longer be read, naming each)
    #[arg(long)]
    pub repair: bool,
}

/// Limits of wasm steps, shared by `build` and `run`.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Memory a step may use (bytes, or with a k/m/g suffix; at least 64k)
    #[arg(long, value_name = "SIZE", default_value = "4g", value_parser = parse_memory_arg, allow_negative_numbers = true)]
    pub step_memory: u64,
    /// Seconds a step may run (at least 1), or `none`: no limit. A century or more is none
    #[arg(long, value_name = "SECONDS", default_value_t = 1800, value_parser = parse_timeout_arg, allow_negative_numbers = true)]
    pub step_timeout: u64,
    /// Bytes of file contents a step may write, layer and mounts together (bytes, or with a
    /// k/m/g suffix)
    #[arg(long, value_name = "SIZE", default_value = "16g", value_parser = parse_size_arg, allow_negative_numbers = true)]
    pub step_max_write: u64,
    /// Files, directories and links a step may create, layer and mounts together
    #[arg(long, value_name = "COUNT", default_value_t = 1_000_000, value_parser = parse_count_arg, allow_negative_numbers = true)]
    pub step_max_files: u64,
    /// Largest wasm program a step may run, checked before compiling (bytes, or with a k/m/g
    /// suffix)
    #[arg(long, value_name = "SIZE", default_value = "256m", value_parser = parse_module_arg, allow_negative_numbers = true)]
    pub step_max_module: u64,
    /// Seconds compiling a step's program may take (compiled code is cached, so once per machine)
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = parse_seconds_arg, allow_negative_numbers = true)]
    pub step_compile_timeout: u64,
}

impl LimitArgs {
    /// The limits these flags describe.
    pub fn limits(&self) -> crate::exec::StepLimits {
        crate::exec::StepLimits {
            memory: usize::try_from(self.step_memory).unwrap_or(usize::MAX),
            timeout: std::time::Duration::from_secs(self.step_timeout.min(MAX_STEP_TIMEOUT_SECS)),
            max_write: self.step_max_write,
            max_files: self.step_max_files,
            max_module: self.step_max_module,
            compile_timeout: std::time::Duration::from_secs(self.step_compile_timeout),
        }
    }
}

/// Longest `--step-timeout` kept as given: a century, which is no limit
/// ([`crate::exec::NO_TIMEOUT`]). Larger values (up to u64::MAX, and `none`)
/// saturate here, so the deadline `now + timeout` can never overflow the
/// clock.
pub const MAX_STEP_TIMEOUT_SECS: u64 = crate::exec::NO_TIMEOUT.as_secs();

/// Smallest `--step-memory`: one wasm page. Less cannot hold any memory, so
/// it is a typo, not a limit.
pub const MIN_STEP_MEMORY: u64 = 64 << 10;

/// A size flag: bytes with an optional k/m/g/t suffix, up to u64::MAX.
fn parse_size_arg(s: &str) -> Result<u64, String> {
    crate::frontend::mount::parse_size(s).ok_or_else(|| {
        format!(
            "{s:?} is not a size from 0 to {}: expected bytes with an optional k, m, g or t suffix, like 512m",
            u64::MAX
        )
    })
}

fn parse_memory_arg(s: &str) -> Result<u64, String> {
    let n = parse_size_arg(s)?;
    if n < MIN_STEP_MEMORY {
        return Err(format!(
            "{s:?} is too small: expected a size from 64k (one wasm page) to {}",
            u64::MAX
        ));
    }
    Ok(n)
}

/// Smallest `--step-max-module`: the 8-byte header every wasm binary
/// starts with. Less refuses every program, so it is a typo, not a limit.
pub const MIN_STEP_MAX_MODULE: u64 = 8;

fn parse_module_arg(s: &str) -> Result<u64, String> {
    let n = parse_size_arg(s)?;
    if n < MIN_STEP_MAX_MODULE {
        return Err(format!(
            "{s:?} is too small: expected a size from 8 (a wasm header) to {}",
            u64::MAX
        ));
    }
    Ok(n)
}

/// A whole number from `min` up; more digits than u64 holds saturate at
/// u64::MAX (a limit that large means "no limit" anyway).
fn parse_whole(s: &str, min: u64, unit: &str) -> Result<u64, String> {
    let t = s.trim();
    let range = format!("expected {unit} from {min} to {}", u64::MAX);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a whole number: {range}"));
    }
    let n = t.parse::<u64>().unwrap_or(u64::MAX);
    if n < min {
        return Err(format!("{s:?} is too small: {range}"));
    }
    Ok(n)
}

fn parse_seconds_arg(s: &str) -> Result<u64, String> {
    parse_whole(s, 1, "whole seconds")
}

/// `--step-timeout`: whole seconds, or `none` (no limit).
fn parse_timeout_arg(s: &str) -> Result<u64, String> {
    if s.trim() == "none" {
        return Ok(u64::MAX);
    }
    parse_whole(s, 1, "whole seconds").map_err(|e| format!("{e}, or none"))
}

fn parse_count_arg(s: &str) -> Result<u64, String> {
    parse_whole(s, 0, "a count")
}

/// A boolean flag's value as docker spells them (Go's `strconv.ParseBool`):
/// `--no-cache`, `--no-cache=true`, `--pull=false`, `--push=1`.
fn parse_bool_arg(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean: expected true or false")),
    }
}

/// `--jobs`: at least 1; more than 65535 saturates (no build has that many
/// stages to run at once).
fn parse_jobs_arg(s: &str) -> Result<u16, String> {
    let n = parse_whole(s, 1, "a number of stages")?;
    Ok(u16::try_from(n).unwrap_or(u16::MAX))
}

/// The network a step may be given: `--allow-net`, `--ca-cert`.
#[derive(Args, Debug)]
pub struct NetArgs {
    /// Hosts a step with network may reach (RUN --network=default, kiln run --network
    /// default): HOST[:PORT], comma-separated, repeatable; no port allows any port. Nothing
    /// else is reachable, and no step has network unless it asks
    #[arg(long = "allow-net", value_name = "HOST[:PORT],...")]
    pub allow_net: Vec<String>,
    /// Trust this CA certificate (a PEM file) for steps' HTTPS requests, besides the
    /// system's; repeatable
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
}

impl NetArgs {
    /// The network options these flags give.
    pub fn options(&self) -> Result<crate::network::NetworkOptions, UsageError> {
        crate::network::NetworkOptions::new(&self.allow_net, &self.ca_cert).map_err(UsageError)
    }
}

/// `kiln run --network`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// No network (the default)
    #[default]
    None,
    /// The hosts given with --allow-net
    Default,
}

/// `kiln run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Accepted for docker compatibility: kiln never keeps what a run wrote
    #[arg(long)]
    pub rm: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to take it from the environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory [default: the image's WORKDIR, or /]
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Attach a mount: type=bind,source=/host/dir,target=/dir[,rw] | type=tmpfs,target=/dir |
    /// type=cache,target=/dir[,id=ID]
    #[arg(long = "mount", value_name = "SPEC")]
    pub mounts: Vec<String>,
    /// Expose a secret: [type=file|env,]id=ID[,src=PATH][,env=VAR]; mount it with
    /// --mount type=secret,id=ID[,target=PATH][,env=VAR]
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// Largest secret accepted (bytes, or with a k/m/g suffix)
    #[arg(long, value_name = "SIZE", default_value = "16m", value_parser = parse_size_arg, allow_negative_numbers = true)]
    pub secret_max_size: u64,
    /// The program's network: none, or default (the hosts given with --allow-net; a wasip2
    /// component only)
    #[arg(long, value_enum, default_value_t = NetworkMode::None, value_name = "MODE")]
    pub network: NetworkMode,
    /// The network's hosts and TLS roots.
    #[command(flatten)]
    pub net: NetArgs,
    /// Step limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The image: NAME[:TAG], an id, or scratch
    pub image: String,
    /// The program and its arguments [default: the image's ENTRYPOINT and CMD]
    ///
    /// `sh -c 'SCRIPT'` runs kiln's built-in POSIX shell when the image has
    /// no sh of its own; its commands are the image's programs.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `kiln build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The build context: the directory COPY reads from
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
    /// The Kilnfile [default: CONTEXT/Kilnfile, or CONTEXT/Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Name the image (NAME[:TAG]); may be repeated
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    pub tags: Vec<String>,
    /// Set a build-time variable (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Expose a secret to RUN steps: [type=file|env,]id=ID[,src=PATH][,env=VAR]
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// Largest secret accepted (bytes, or with a k/m/g suffix)
    #[arg(long, value_name = "SIZE", default_value = "16m", value_parser = parse_size_arg, allow_negative_numbers = true)]
    pub secret_max_size: u64,
    /// What to do when a layer or the image config contains a secret
    #[arg(long, value_enum, default_value_t = crate::build::SecretScan::Error, value_name = "MODE")]
    pub secret_scan: crate::build::SecretScan,
    /// Build this stage instead of the last
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Run every step instead of reusing the step cache (results still go into it)
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = parse_bool_arg)]
    pub no_cache: bool,
    /// Run every step of this stage (by name, or index) instead of reusing the cache; repeatable
    #[arg(long, value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// How many stages may build at once [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = parse_jobs_arg, allow_negative_numbers = true)]
    pub jobs: Option<u16>,
    /// Import step cache entries from an OCI layout directory or a registry:
    /// type=local,src=DIR | type=registry,ref=REGISTRY/NAME[:TAG]; repeatable
    #[arg(long, value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export this build's step cache to an OCI layout directory or a registry:
    /// type=local,dest=DIR | type=registry,ref=REGISTRY/NAME:TAG, then [,mode=min|max][,ignore-error=true]
    #[arg(long, value_name = "SPEC")]
    pub cache_to: Option<String>,
    /// The image platform, OS/ARCH [default: the base image's, or wasi/wasm]; several,
    /// comma-separated, build the Kilnfile once per platform into a multi-platform image (an
    /// index)
    #[arg(long, value_name = "OS/ARCH[,...]")]
    pub platform: Option<String>,
    /// Ask the registry for the current image of every tagged base image, even when the store
    /// has one (images named by digest never are)
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = parse_bool_arg)]
    pub pull: bool,
    /// Push the image to every -t name (a registry reference) once it is built
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = parse_bool_arg)]
    pub push: bool,
    /// Also write the result: type=oci,dest=FILE[,tar=false] | type=docker,dest=FILE | type=tar,dest=FILE |
    /// type=local,dest=DIR | type=image[,name=REF[,...]][,push=true] | type=registry[,name=REF];
    /// compression=gzip|zstd|uncompressed. Quote a field holding commas: "name=a:1,b:1"
    #[arg(short = 'o', long, value_name = "SPEC")]
    pub output: Option<String>,
    /// Write the image id (the manifest digest) to FILE, as docker build does
    #[arg(long = "iidfile", value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write the build's result as JSON to FILE, as buildx does
    /// (containerimage.digest, containerimage.config.digest, image.name)
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// How to show progress
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE")]
    pub progress: ProgressMode,
    /// buildx's flag to load the image into docker: refused with the kiln way to do it
    #[arg(long, hide = true, value_name = "BOOL", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = parse_bool_arg)]
    pub load: bool,
    /// Print only the image id (same as --progress quiet); each push adds a line REF@DIGEST
    #[arg(short, long)]
    pub quiet: bool,
    /// The network of RUN --network=default steps.
    #[command(flatten)]
    pub net: NetArgs,
    /// Limits of each RUN step.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `kiln history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Show full ids and commands
    #[arg(long)]
    pub no_trunc: bool,
    /// The image: NAME[:TAG], or an id (prefix)
    pub image: String,
}

/// Commands that take one image.
#[derive(Args, Debug)]
pub struct ImageArg {
    /// The image: NAME[:TAG], or an id (prefix)
    pub image: String,
}

/// `kiln export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The image: NAME[:TAG], or an id (prefix)
    pub image: String,
    /// The archive to write (- for standard output)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `kiln rmi`.
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// The images: NAME[:TAG], or ids (prefixes)
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `kiln prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Also remove untagged images, the whole step cache and the cache mounts
    #[arg(long)]
    pub all: bool,
    /// Remove only the cache mount directories (RUN --mount=type=cache)
    #[arg(long, conflicts_with_all = ["all", "keep_storage"])]
    pub cache_mounts: bool,
    /// Docker's spelling of --cache-mounts: type=exec.cachemount (the only filter kiln knows)
    #[arg(long, value_name = "FILTER", value_parser = ["type=exec.cachemount"], conflicts_with_all = ["all", "keep_storage"])]
    pub filter: Option<String>,
    /// Keep at most SIZE of step cache data (least recently used goes first), like 10g
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg, allow_negative_numbers = true)]
    pub keep_storage: Option<u64>,
}

/// Parses `--secret` flags and reads the values into memory; from then on
/// the printer masks them in everything it prints.
pub(crate) fn load_secrets(
    specs: &[String],
    max: u64,
    printer: &Printer,
    cancel: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<crate::secrets::SecretStore> {
    let mut parsed = Vec::new();
    for spec in specs {
        parsed.push(
            crate::secrets::SecretSpec::parse(spec, &|name| std::env::var_os(name).is_some())
                .map_err(|e| UsageError(format!("--secret {spec}: {e}")))?,
        );
    }
    let waiting = |id: &str, path: &std::path::Path| {
        printer.status(&format!(
            "secret {id:?}: waiting for {} to be written (a FIFO needs a writer; Ctrl-C stops)",
            path.display()
        ));
    };
    let secrets = crate::secrets::SecretStore::load_interruptible(
        &parsed,
        max,
        &|name| std::env::var_os(name),
        cancel,
        &waiting,
    )?;
    if let Some(scanner) = crate::secrets::LeakScanner::new(secrets.all().map(|s| &**s)) {
        printer.mask_secrets(std::sync::Arc::new(scanner));
    }
    Ok(secrets)
}

/// A mistake in how kiln was invoked: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs kiln with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let progress = match &cli.command {
        Command::Build(b) if b.quiet => ProgressMode::Quiet,
        Command::Build(b) => b.progress,
        Command::Pull(p) if p.quiet => ProgressMode::Quiet,
        Command::Pull(p) => p.progress,
        Command::Push(p) if p.quiet => ProgressMode::Quiet,
        Command::Push(p) => p.progress,
        Command::Publish(p) if p.quiet => ProgressMode::Quiet,
        Command::Publish(p) => p.progress,
        _ => ProgressMode::Plain,
    };
    let printer = Printer::new(progress);
    // Ctrl-C, SIGTERM and SIGHUP stop the running step and end the command
    // cleanly; a second one exits at once (`signals.rs`).
    let cancel = crate::exec::cancel_flag();
    signals::install(std::sync::Arc::clone(&cancel));
    match commands::run(cli, &printer, cancel) {
        Ok(code) => code,
        Err(err) => {
            printer.error(&err);
            if let Some(hint) = hint_for(&err) {
                printer.hint(&hint);
            }
            let build = err.downcast_ref::<crate::build::BuildError>();
            let secret_wait = matches!(
                err.downcast_ref::<crate::secrets::SecretError>(),
                Some(crate::secrets::SecretError::Cancelled { .. })
            );
            let transfer = matches!(
                err.downcast_ref::<crate::registry::RegistryError>(),
                Some(crate::registry::RegistryError::Cancelled)
            );
            let load = matches!(
                err.downcast_ref::<crate::load::LoadError>(),
                Some(crate::load::LoadError::Cancelled)
            );
            if matches!(build, Some(crate::build::BuildError::Cancelled))
                || secret_wait
                || transfer
                || load
            {
                return ExitCode::from(signals::exit_code() as u8);
            }
            let usage =
                err.downcast_ref::<UsageError>().is_some() || build.is_some_and(|b| b.is_usage());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn hint_for(err: &anyhow::Error) -> Option<String> {
    use crate::store::{RefError, StoreError};
    for cause in err.chain() {
        if let Some(StoreError::Ref(RefError::NotFound(_))) = cause.downcast_ref::<StoreError>() {
            return Some("`kiln images` lists what the store holds; --store or KILN_STORE picks another store".into());
        }
        let damaged = matches!(
            cause.downcast_ref::<StoreError>(),
            Some(StoreError::Corrupt { .. })
        ) || cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(crate::digest::is_damaged);
        if damaged {
            return Some(
                "part of the store is damaged on disk: `kiln check` lists what is damaged and which images use it; `kiln check --repair` rebuilds what it can and removes the rest (the next build makes it again)".into(),
            );
        }
    }
    None
}
