//! `kiln images`: the store's images as docker lists them, newest first
//! (then by name), sizes in docker's units.

use std::process::ExitCode;

use anyhow::Result;

use super::commands::{ago, created_at, table};
use super::printer::Printer;
use crate::image::Image;
use crate::store::Store;

/// One row before it is formatted.
struct Row {
    repo: String,
    tag: String,
    id: String,
    created: Option<jiff::Timestamp>,
    created_text: String,
    size: String,
}

pub(super) fn images(store: &Store, printer: &Printer) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for img in store.images()? {
        let (repo, tag) = match &img.name {
            Some(n) => match n.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                _ => (n.clone(), "<none>".into()),
            },
            None => ("<none>".into(), "<none>".into()),
        };
        let (created, created_text, size) = match Image::load(store, &img.manifest, None) {
            Ok(image) => {
                let c = image.config.created().clone();
                (
                    created_at(c.as_deref()),
                    ago(c.as_deref()),
                    docker_size(image.size()),
                )
            }
            Err(_) => (None, "N/A".into(), "N/A".into()),
        };
        rows.push(Row {
            repo,
            tag,
            id: img.manifest.digest.short(),
            created,
            created_text,
            size,
        });
    }
    sort(&mut rows);
    let mut cells = vec![vec![
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    cells.extend(
        rows.into_iter()
            .map(|r| vec![r.repo, r.tag, r.id, r.created_text, r.size]),
    );
    for line in table(&cells) {
        printer.out(&line);
    }
    Ok(ExitCode::SUCCESS)
}

/// Newest first, images without a time last; then by name and tag.
fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| (&a.repo, &a.tag, &a.id).cmp(&(&b.repo, &b.tag, &b.id)))
    });
}

/// A size as docker prints image sizes: SI units (1 kB = 1000 B), three
/// significant digits, trailing zeros dropped (`3.6kB`, `12.3MB`,
/// `512B`). Where docker's formatting would round up into exponent
/// notation (`1e+03kB`), the next unit is used instead (`1MB`).
pub(super) fn docker_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let mut text = three_digits(size);
    if text == "1000" && unit < UNITS.len() - 1 {
        unit += 1;
        text = "1".into();
    }
    format!("{text}{}", UNITS[unit])
}

/// `v` (0 <= v < 1000) to three significant digits, without trailing zeros.
fn three_digits(v: f64) -> String {
    let decimals = match v {
        v if v < 10.0 => 2,
        v if v < 100.0 => 1,
        _ => 0,
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        for (bytes, want) in [
            (0, "0B"),
            (1, "1B"),
            (999, "999B"),
            (1000, "1kB"),
            (3_600, "3.6kB"),
            (3_645, "3.65kB"),
            (12_345_678, "12.3MB"),
            (99_960, "100kB"),
            (999_999, "1MB"),
            (1_500_000_000, "1.5GB"),
            (123_456_789_012, "123GB"),
            (u64::MAX, "18.4EB"),
        ] {
            assert_eq!(docker_size(bytes), want, "{bytes}");
        }
    }

    fn row(repo: &str, created: Option<i64>) -> Row {
        Row {
            repo: repo.into(),
            tag: "latest".into(),
            id: String::new(),
            created: created.map(|s| jiff::Timestamp::from_second(s).unwrap()),
            created_text: String::new(),
            size: String::new(),
        }
    }

    #[test]
    fn images_sort_newest_first_then_by_name() {
        let mut rows = vec![
            row("b", None),
            row("old", Some(1_000)),
            row("a", None),
            row("new", Some(2_000)),
            row("also-new", Some(2_000)),
        ];
        sort(&mut rows);
        let order: Vec<&str> = rows.iter().map(|r| r.repo.as_str()).collect();
        assert_eq!(order, ["also-new", "new", "old", "a", "b"]);
    }

    #[test]
    fn the_epoch_is_no_creation_time() {
        assert_eq!(ago(Some("1970-01-01T00:00:00Z")), "N/A");
        assert_eq!(ago(None), "N/A");
        assert_eq!(ago(Some("garbage")), "N/A");
        assert!(ago(Some("2020-01-01T00:00:00Z")).ends_with("years ago"));
    }
}
