//! What a build does with its image besides naming it in the store:
//! pushing it (`--push`, `-o type=registry`), and building one Kilnfile
//! for several platforms (`--platform a,b`) into an OCI image index.
//!
//! Several platforms: the Kilnfile is read once and built once per
//! platform, in the order given. RUN steps are wasm, so the same steps run
//! for each; what differs is the config's os/architecture, the platform
//! ARGs (`TARGETPLATFORM`...), and the base images, which are pulled per
//! platform. Each platform's steps are named `[linux/amd64 1/3] ...`. The
//! images go into an index (each manifest descriptor with its `platform`),
//! which is what the tags name and what is pushed.

use super::definition::{load, save_stat_cache};
use super::pull::StepTransfers;
use super::{BuildError, BuildOptions, Progress, Steps, build_loaded};
use crate::image::{Image, Platform};
use crate::registry::push::Pushed;
use crate::registry::{self, Reference, RegistryError};
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, Store};

/// A multi-platform build's result.
#[derive(Debug)]
pub struct BuildIndexOutput {
    /// The image index, as stored.
    pub index: Descriptor,
    /// Each platform's image, in the order built.
    pub images: Vec<(Platform, Image)>,
    /// The names the index was tagged with.
    pub tags: Vec<String>,
    /// What was pushed where.
    pub pushed: Vec<(Reference, Pushed)>,
}

/// Parses `--platform`: one platform or several, comma-separated
/// (`wasi/wasm,linux/amd64`), each once.
pub fn parse_platforms(spec: &str) -> Result<Vec<Platform>, String> {
    let mut out: Vec<Platform> = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!(
                "{spec:?}: an empty platform; expected OS/ARCH[,OS/ARCH...], like wasi/wasm,linux/amd64"
            ));
        }
        let p = Platform::parse(part)?;
        if out.contains(&p) {
            return Err(format!("{p} is given twice"));
        }
        out.push(p);
    }
    Ok(out)
}

/// Builds the Kilnfile once per platform and writes an index of the images,
/// tagged `opts.tags`, then pushed to `opts.push`.
pub fn build_platforms(
    store: &Store,
    opts: &BuildOptions,
    platforms: &[Platform],
    progress: &dyn Progress,
) -> Result<BuildIndexOutput, BuildError> {
    if platforms.is_empty() {
        return Err(BuildError::Usage("no platform to build for".into()));
    }
    let steps = Steps::new(progress);
    let (kilnfile, context) = load(store, opts, &steps)?;
    let mut next = steps.last() + 1;
    let mut images = Vec::new();
    for platform in platforms {
        let mut one = opts.clone();
        one.platform = Some(platform.clone());
        one.tags = Vec::new();
        one.push = Vec::new();
        let steps = Steps::new(progress);
        steps.skip_to(next);
        let built = build_loaded(
            store,
            &one,
            steps,
            &kilnfile,
            &context,
            Some(platform.to_string()),
        );
        save_stat_cache(store, &context, &Steps::new(progress));
        let built = built?;
        next = built.last_step + 1;
        images.push((platform.clone(), built.out.image));
    }
    let steps = Steps::new(progress);
    steps.skip_to(next);
    let index = steps.run("exporting manifest list", |id| {
        let index = write_index(store, &images)?;
        steps.log(id, &format!("writing image index {} done", index.digest));
        store.add_image(&index, &opts.tags)?;
        for tag in &opts.tags {
            steps.log(id, &format!("naming to {tag} done"));
        }
        Ok::<_, BuildError>(index)
    })?;
    let pushed = push_all(store, opts, &steps, &index)?;
    Ok(BuildIndexOutput {
        index,
        images,
        tags: opts.tags.clone(),
        pushed,
    })
}

/// Writes an OCI image index of `images` into the store (not tagged).
fn write_index(store: &Store, images: &[(Platform, Image)]) -> Result<Descriptor, BuildError> {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|(platform, image)| {
            let mut p = serde_json::json!({
                "architecture": platform.arch,
                "os": platform.os,
            });
            if let Some(v) = &platform.variant {
                p["variant"] = v.clone().into();
            }
            serde_json::json!({
                "mediaType": image.descriptor.media_type,
                "digest": image.descriptor.digest,
                "size": image.descriptor.size,
                "platform": p,
            })
        })
        .collect();
    let bytes = crate::json::canonical(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
    }));
    let digest = store.put_blob(&bytes)?;
    Ok(Descriptor::new(
        INDEX_MEDIA_TYPE,
        digest,
        bytes.len() as u64,
    ))
}

/// Pushes `image` (a manifest or an index) to each of `opts.push`, a step
/// each.
pub(super) fn push_all(
    store: &Store,
    opts: &BuildOptions,
    steps: &Steps<'_>,
    image: &Descriptor,
) -> Result<Vec<(Reference, Pushed)>, BuildError> {
    let mut out = Vec::new();
    for target in &opts.push {
        let fail = |source: RegistryError| match source {
            RegistryError::Cancelled => BuildError::Cancelled,
            source => BuildError::Push {
                target: target.to_string(),
                source,
            },
        };
        let pushed = steps.run(&format!("pushing {target}"), |id| {
            let session = opts.registries.session(&opts.cancel).map_err(fail)?;
            let view = StepTransfers::new(steps, id);
            let pushed =
                registry::push::push(&session, store, image, target, &view).map_err(fail)?;
            steps.log(
                id,
                &format!(
                    "pushed {target}@{} ({} uploaded)",
                    pushed.digest,
                    super::human_bytes(pushed.uploaded)
                ),
            );
            Ok::<_, BuildError>(pushed)
        })?;
        out.push((target.clone(), pushed));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_lists() {
        let p = parse_platforms("wasi/wasm, linux/amd64,linux/arm64/v8").unwrap();
        let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["wasi/wasm", "linux/amd64", "linux/arm64/v8"]);
        assert_eq!(parse_platforms("linux/amd64").unwrap().len(), 1);
        for (bad, why) in [
            ("", "empty platform"),
            ("linux/amd64,", "empty platform"),
            ("linux/amd64,linux/AMD64", "given twice"),
            ("linux", "expected OS/ARCH"),
            ("linux/amd64,,wasi/wasm", "empty platform"),
        ] {
            let e = parse_platforms(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
