//! WASI 0.2 for components (`wasm32-wasip2` programs): kiln's own
//! `wasi:filesystem` over the step's VFS, the rest from wasmtime-wasi.
//!
//! What [`add_to_linker`] defines, and where it comes from:
//!
//! | interfaces | implementation |
//! |---|---|
//! | `wasi:filesystem/types`, `wasi:filesystem/preopens` | ours (`filesystem.rs`, bindings from `runner/wit`), answered from `StepState.vfs` and `StepState.preopens` |
//! | `wasi:io/streams` | wasmtime-wasi's, with file streams served from the VFS around each call (`streams.rs`) |
//! | `wasi:io/poll` | wasmtime-wasi's, with blocked waits noticing Ctrl-C (`poll.rs`) |
//! | `wasi:io/error` | wasmtime-wasi |
//! | `wasi:cli/environment` | ours (`environment.rs`): arguments, environment and working directory straight from `StepState`, so secret values live in one place that is zeroed |
//! | `wasi:cli/*` (exit with `exit-with-code`, stdio, terminals) | wasmtime-wasi, over the [`WasiCtx`] in [`P2State`] |
//! | `wasi:clocks/wall-clock`, `wasi:clocks/monotonic-clock` | wasmtime-wasi, reading the step's [`Clocks`] |
//! | `wasi:random/*` | wasmtime-wasi's defaults (the OS-seeded generators), or seeded streams for reproducible steps |
//! | `wasi:http/outgoing-handler`, `wasi:http/types` | wasmtime-wasi-http's, sync, with kiln's hooks (`http.rs`): the step's allowlist, origin-bound secrets, kiln's own sender and TLS roots; every request refused when the step has no network |
//! | `wasi:sockets/*` | wasmtime-wasi's TCP, with every address checked by kiln's rules and `ip-name-lookup` ours over wasmtime-wasi's (`sockets.rs`): connect out to allowed names and addresses only, no listening, no UDP |
//!
//! Nothing else: no host directories. A component that imports anything
//! missing fails to instantiate, with wasmtime's error naming the import.
//!
//! The [`WasiCtx`] is built closed: the step's arguments, environment and
//! working directory, the step's stdio (`stdio.rs`), no inherited host
//! environment, arguments or streams, no preopened host directory, every
//! socket address checked by the step's rules (all denied without network).
//!
//! What guests built with Rust 1.95 for `wasm32-wasip2` do with this (its
//! wasi-libc imports neither `exit-with-code` nor `initial-cwd` nor
//! `filesystem-error-code`): a nonzero `std::process::exit(n)` arrives as
//! `exit(err)`, exit code 1; wasi-libc's own working directory starts at
//! `/` and it maps relative and absolute paths alike onto the preopens
//! (`/` here), so relative paths resolve from `/` until the program calls
//! `chdir` (to `$PWD`, the step's `WORKDIR`, as `kiln_guest::run` does) and
//! from there after; and a failed write through a stream is `EIO` to the
//! program. A component that calls `exit-with-code` or `initial-cwd` gets
//! the step's code and `WORKDIR`.
//!
//! Read next: `filesystem.rs` (descriptors and paths), `streams.rs` (file
//! streams), `stdio.rs`, and `crate::vfs` for the semantics underneath.

mod bindings;
mod clocks;
mod environment;
mod errors;
mod filesystem;
mod http;
mod poll;
mod sockets;
mod stdio;
mod streams;
#[cfg(test)]
mod tests;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::p2::bindings::{
    cli, clocks as wasi_clocks, random, sockets as wasi_sockets, sync,
};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsCtxView, WasiSocketsView as _};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use filesystem::{Descriptor, DirectoryEntryStream, MAX_READ_BYTES};
pub use http::Net;
pub use poll::CANCEL_CHECK;
pub use stdio::{STDIN_READ_CHUNK, STDIO_WRITE_PERMIT};
pub use streams::{MAX_STREAM_READ, WRITE_PERMIT};

use super::{Clocks, Stdio, StepState};

/// The component layer's state: wasmtime-wasi's context and resource table,
/// and the VFS ends of open file streams.
pub struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    files: streams::FileStreams,
    http: wasmtime_wasi_http::WasiHttpCtx,
    net: http::Net,
    sockets: sockets::Rules,
}

impl P2State {
    /// State for a step that does not run a component: an empty context
    /// with nothing inherited.
    pub fn unused() -> P2State {
        let rules = sockets::Rules::default();
        P2State {
            ctx: closed_builder(&rules).build(),
            table: ResourceTable::new(),
            files: streams::FileStreams::default(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            net: http::Net::default(),
            sockets: rules,
        }
    }

    /// State for a step that runs a component with `args` (program name
    /// first), `env` and working directory `cwd` (the step's `WORKDIR`),
    /// reading `clocks`.
    ///
    /// The component writes to `stdio`'s writers and reads its reader: they
    /// are moved behind shared handles whose clones are put back into
    /// `stdio`, so the caller's `Stdio` stays usable and writes through
    /// either end reach the same writer in order.
    ///
    /// With a `seed`, the random sources (`wasi:random/*`) are
    /// [`SeededRandom`](crate::wasi::SeededRandom) streams of it instead of
    /// the operating system's.
    pub fn new(stdio: &mut Stdio, clocks: &Clocks, seed: Option<&[u8; 32]>) -> P2State {
        let shared = stdio::share(stdio);
        let rules = sockets::Rules::default();
        let mut b = closed_builder(&rules);
        // Arguments, environment and working directory are served from
        // `StepState` by `environment.rs`, not kept in the context.
        b.stdin(shared.stdin)
            .stdout(shared.stdout)
            .stderr(shared.stderr)
            .wall_clock(clocks::WallClock::new(clocks))
            .monotonic_clock(clocks::MonotonicClock::new(clocks));
        if let Some(seed) = seed {
            let mut insecure_seed = [0u8; 16];
            crate::wasi::Random::fill(
                &mut crate::wasi::SeededRandom::new(seed, "p2 insecure-seed"),
                &mut insecure_seed,
            );
            b.secure_random(crate::wasi::SeededRandom::new(seed, "p2 random"))
                .insecure_random(crate::wasi::SeededRandom::new(seed, "p2 insecure"))
                .insecure_random_seed(u128::from_le_bytes(insecure_seed));
        }
        P2State {
            ctx: b.build(),
            table: ResourceTable::new(),
            files: streams::FileStreams::default(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            net: http::Net::default(),
            sockets: rules,
        }
    }

    /// Sets `state.p2` for running a component, from the state's own
    /// arguments, environment, working directory, stdio and clocks.
    pub fn install(state: &mut StepState, seed: Option<&[u8; 32]>) {
        state.p2 = P2State::new(&mut state.stdio, &state.clocks, seed);
    }

    /// Gives the component the network `net` describes (none by default):
    /// `wasi:http` requests, `wasi:sockets` connects and name lookups are
    /// checked against it.
    pub fn set_network(&mut self, net: Net) {
        self.sockets.set(net.policy.clone(), net.log.clone());
        self.net = net;
    }
}

/// A builder with every default closed: wasmtime-wasi's builder inherits
/// nothing unless asked. TCP and name lookups are on, but every address a
/// socket uses goes through `rules` (which deny everything until
/// [`P2State::set_network`] says otherwise), and every name looked up
/// through kiln's `ip-name-lookup` host (`sockets.rs`). UDP is off.
fn closed_builder(rules: &sockets::Rules) -> wasmtime_wasi::WasiCtxBuilder {
    let mut b = WasiCtx::builder();
    let rules = rules.clone();
    b.allow_tcp(true)
        .allow_udp(false)
        .allow_ip_name_lookup(true)
        .socket_addr_check(move |addr, use_| {
            let ok = rules.check(addr, use_);
            Box::pin(async move { ok })
        });
    b
}

impl wasmtime_wasi_http::WasiHttpView for StepState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.p2.http,
            table: &mut self.p2.table,
            hooks: &mut self.p2.net,
        }
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.p2.ctx,
            table: &mut self.p2.table,
        }
    }
}

/// Defines the WASI 0.2 imports kiln offers in `linker` (see the module
/// docs), all synchronous.
pub fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    type S = StepState;
    let l = linker;

    sync::io::error::add_to_linker::<S, HasSelf<ResourceTable>>(l, |s| &mut s.p2.table)?;
    sync::io::poll::add_to_linker::<S, poll::Poll>(l, |s| poll::PollView {
        table: &mut s.p2.table,
        clocks: s.p2.ctx.clocks(),
        cancel: &s.cancel,
        deadline: s.deadline,
    })?;
    sync::io::streams::add_to_linker::<S, streams::Io>(l, |s| streams::IoView {
        table: &mut s.p2.table,
        vfs: &mut s.vfs,
        files: &mut s.p2.files,
    })?;

    bindings::wasi::filesystem::types::add_to_linker::<S, filesystem::Filesystem>(l, fs_view)?;
    bindings::wasi::filesystem::preopens::add_to_linker::<S, filesystem::Filesystem>(l, fs_view)?;

    wasi_clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    wasi_clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    random::random::add_to_linker::<S, WasiRandom>(l, |s| s.p2.ctx.random())?;
    random::insecure::add_to_linker::<S, WasiRandom>(l, |s| s.p2.ctx.random())?;
    random::insecure_seed::add_to_linker::<S, WasiRandom>(l, |s| s.p2.ctx.random())?;

    // `exit-with-code` is stable since WASI 0.2.12, the version of these
    // bindings, so no link option is needed: `exit-with-code(42)` is exit
    // code 42.
    cli::exit::add_to_linker::<S, WasiCli>(l, S::cli)?;
    // Ours, not wasmtime-wasi's: the environment may hold secrets
    // (`--mount=type=secret,env=...`), and only `StepState.env` is zeroed
    // when the step ends.
    cli::environment::add_to_linker::<S, environment::Environment>(l, |s| environment::EnvView {
        args: &s.args,
        env: &s.env,
        cwd: &s.cwd,
    })?;
    cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    // Linked for every component; a step without network has each request
    // refused with a message naming the flags (`http.rs`).
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(l)?;
    // Linked for every component; what a socket may reach is decided by
    // `sockets::Rules` (nothing without network), and UDP sockets cannot
    // be created.
    wasi_sockets::network::add_to_linker::<S, WasiSockets>(l, &Default::default(), S::sockets)?;
    wasi_sockets::instance_network::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    wasi_sockets::tcp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sync::sockets::tcp::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sync::sockets::udp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sync::sockets::udp::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    wasi_sockets::ip_name_lookup::add_to_linker::<S, sockets::Lookup>(l, |s| {
        sockets::LookupView {
            sockets: WasiSocketsCtxView {
                ctx: s.p2.ctx.sockets(),
                table: &mut s.p2.table,
            },
            rules: &s.p2.sockets,
        }
    })?;
    Ok(())
}

fn fs_view(s: &mut StepState) -> filesystem::FsView<'_> {
    filesystem::FsView {
        table: &mut s.p2.table,
        vfs: &mut s.vfs,
        preopens: &s.preopens,
        streams: &mut s.p2.files,
    }
}
