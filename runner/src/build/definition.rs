//! The first two steps of a build: reading and parsing the Kilnfile (at
//! most [`frontend::MAX_KILNFILE_BYTES`], its real size told when larger)
//! and opening the context.

use super::steps::Steps;
use super::{BuildError, BuildOptions, human_bytes};
use crate::context::{Context, StatCache};
use crate::frontend::{self, Kilnfile};
use crate::store::Store;

/// Largest Kilnfile read from disk (see [`frontend::MAX_KILNFILE_BYTES`]).
const MAX_READ: u64 = frontend::MAX_KILNFILE_BYTES as u64 + 1;

/// What the progress calls the build definition at `path`: `dockerfile`
/// for a file named like one (`Dockerfile`, `Dockerfile.dev`,
/// `app.dockerfile`), `kilnfile` otherwise.
fn definition_kind(path: &str) -> &'static str {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.starts_with("dockerfile") || name.ends_with(".dockerfile") {
        "dockerfile"
    } else {
        "kilnfile"
    }
}

/// Reads and parses the Kilnfile and opens the context, as the first steps.
pub(super) fn load(
    store: &Store,
    opts: &BuildOptions,
    steps: &Steps<'_>,
) -> Result<(Kilnfile, Context), BuildError> {
    let kilnfile = steps.run(
        &format!(
            "[internal] load build definition from {}",
            opts.kilnfile_name
        ),
        |id| {
            let text = read_kilnfile(opts)?;
            steps.log(
                id,
                &format!(
                    "transferring {}: {}",
                    definition_kind(&opts.kilnfile_name),
                    human_bytes(text.len() as u64)
                ),
            );
            frontend::parse(&opts.kilnfile_name, &text).map_err(BuildError::from)
        },
    )?;
    let context = steps.run("[internal] load build context", |id| {
        let mut ctx = Context::open(&opts.context)?;
        ctx.use_stat_cache(std::sync::Arc::new(StatCache::load(
            store.context_cache_file(&opts.context),
        )));
        if let Some(file) = ctx.ignore_file() {
            steps.log(id, &format!("using {file}"));
        }
        Ok::<_, BuildError>(ctx)
    })?;
    Ok((kilnfile, context))
}

/// Saves what the build learnt about the context's files (a failure is
/// a warning: it costs the next build some hashing, nothing else).
pub(super) fn save_stat_cache(store: &Store, context: &Context, steps: &Steps<'_>) {
    let Some(cache) = context.stat_cache() else {
        return;
    };
    if let Err(e) = cache.save(|path, bytes| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        store
            .write_file_unsynced(path, bytes)
            .map_err(std::io::Error::other)
    }) {
        steps.warn(&format!("could not save the context's file digests: {e}"));
    }
}

fn read_kilnfile(opts: &BuildOptions) -> Result<String, BuildError> {
    use std::io::Read;
    let err = |source| BuildError::ReadKilnfile {
        path: opts.kilnfile.clone(),
        source,
    };
    let file = std::fs::File::open(&opts.kilnfile).map_err(err)?;
    // Its real size, not what a capped read saw.
    let size = file.metadata().map_err(err)?.len();
    if size > frontend::MAX_KILNFILE_BYTES as u64 {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is {} ({size} bytes); a Kilnfile may be at most {} ({} bytes)",
                human_bytes(size),
                human_bytes(frontend::MAX_KILNFILE_BYTES as u64),
                frontend::MAX_KILNFILE_BYTES
            ),
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes).map_err(err)?;
    String::from_utf8(bytes).map_err(|_| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text: is this a Kilnfile?",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_called_by_its_file_name() {
        assert_eq!(definition_kind("Kilnfile"), "kilnfile");
        assert_eq!(definition_kind("ctx/Kilnfile.registry"), "kilnfile");
        assert_eq!(definition_kind("Dockerfile"), "dockerfile");
        assert_eq!(definition_kind("ci/Dockerfile.dev"), "dockerfile");
        assert_eq!(definition_kind("app.dockerfile"), "dockerfile");
        assert_eq!(definition_kind("build.txt"), "kilnfile");
    }
}
