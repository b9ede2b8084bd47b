//! `kiln build`'s side of registries: which names `-o type=image,name=`
//! adds in the store, and where `--push`, `-o type=image,push=true` and
//! `-o type=registry` send the image.
//!
//! - `--push`: to every `-t` name and every `-o ...,name=` reference.
//! - `-o type=image,name=A,push=true` (or `type=registry,name=A`): to A;
//!   without `name=`, to the `-t` names.
//! - `-o type=image,name=A`: A only names the image in the store.
//!
//! Each `-t` name pushed to must be a registry reference; a push with no
//! name to go to is a usage error.

use anyhow::Result;

use super::UsageError;
use crate::export::OutputKind;
use crate::registry::{Reference, store_name};

/// The store names the `-o` names give (docker short forms).
pub(super) fn output_names(output: &OutputKind) -> Vec<String> {
    match output {
        OutputKind::Image { names, .. } => names.iter().filter_map(store_name).collect(),
        _ => Vec::new(),
    }
}

/// Where to push (see the module docs), each once, in order.
pub(super) fn push_targets(
    push_flag: bool,
    output: &OutputKind,
    tags: &[String],
) -> Result<Vec<Reference>> {
    let (names, push_output) = match output {
        OutputKind::Image { names, push } => (names.as_slice(), *push),
        _ => (&[][..], false),
    };
    let parse_tags = || -> Result<Vec<Reference>> {
        tags.iter()
            .map(|t| {
                Reference::parse(t)
                    .map_err(|e| UsageError(format!("-t {t}: cannot push there: {e}")).into())
            })
            .collect()
    };
    let mut targets: Vec<Reference> = Vec::new();
    if push_flag {
        targets.extend(parse_tags()?);
        targets.extend(names.iter().cloned());
    } else if push_output {
        if names.is_empty() {
            targets.extend(parse_tags()?);
        } else {
            targets.extend(names.iter().cloned());
        }
    } else {
        return Ok(Vec::new());
    }
    if targets.is_empty() {
        let how = if push_flag {
            "--push"
        } else {
            "-o ...,push=true"
        };
        return Err(UsageError(format!(
            "{how}: no name to push to: name the image with -t REGISTRY/NAME:TAG (or -o type=registry,name=REF)"
        ))
        .into());
    }
    let mut seen = Vec::new();
    targets.retain(|t| {
        let new = !seen.contains(t);
        seen.push(t.clone());
        new
    });
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(names: &[&str], push: bool) -> OutputKind {
        OutputKind::Image {
            names: names.iter().map(|n| Reference::parse(n).unwrap()).collect(),
            push,
        }
    }

    fn shown(targets: Vec<Reference>) -> Vec<String> {
        targets.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn push_targets_follow_buildx() {
        let tags = ["localhost:5000/a:1".to_string()];
        assert!(
            push_targets(false, &image(&[], false), &tags)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            shown(push_targets(true, &image(&[], false), &tags).unwrap()),
            ["localhost:5000/a:1"]
        );
        assert_eq!(
            shown(push_targets(false, &image(&["localhost:5000/b:2"], true), &tags).unwrap()),
            ["localhost:5000/b:2"]
        );
        assert_eq!(
            shown(push_targets(false, &image(&[], true), &tags).unwrap()),
            ["localhost:5000/a:1"]
        );
        assert_eq!(
            shown(push_targets(true, &image(&["localhost:5000/a:1"], false), &tags).unwrap()),
            ["localhost:5000/a:1"]
        );
        let e = push_targets(true, &image(&[], false), &[]).unwrap_err();
        assert!(e.to_string().contains("no name to push to"), "{e}");
        let e = push_targets(false, &image(&[], true), &[]).unwrap_err();
        assert!(e.to_string().contains("push=true"), "{e}");
        let e = push_targets(true, &image(&[], false), &["Bad/Name".into()]).unwrap_err();
        assert!(e.to_string().contains("-t Bad/Name"), "{e}");
        assert_eq!(
            output_names(&image(&["localhost:5000/b:2", "alpine"], false)),
            ["localhost:5000/b:2", "alpine:latest"]
        );
    }
}
