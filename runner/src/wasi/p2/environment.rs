//! `wasi:cli/environment` answered from `StepState`: arguments, environment
//! variables and the initial working directory. wasmtime-wasi keeps its own
//! copies in its context; kiln keeps one copy, in the step's state, because
//! an environment variable may hold a secret and must be zeroed when the
//! step ends.

use wasmtime::component::HasData;
use wasmtime_wasi::p2::bindings::cli::environment::Host;

/// The step's arguments, environment and working directory.
pub(super) struct EnvView<'a> {
    pub(super) args: &'a [String],
    pub(super) env: &'a [(String, String)],
    pub(super) cwd: &'a str,
}

/// Marker for `add_to_linker`.
pub(super) struct Environment;

impl HasData for Environment {
    type Data<'a> = EnvView<'a>;
}

impl Host for EnvView<'_> {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.env.to_vec())
    }

    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.args.to_vec())
    }

    fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(Some(self.cwd.to_string()))
    }
}
