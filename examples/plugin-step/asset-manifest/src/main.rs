//! `asset-manifest`: a reusable build step, published as a wasm file.
//!
//! Given a static site directory, it writes `asset-manifest.json`: for each
//! file its size, sha256, content type and a fingerprinted name
//! (`css/site.3f2a1b4c.css`), the map a web server or a bundler uses for
//! cache-busting URLs. With `--copy`, it also writes the fingerprinted copies
//! next to the originals. Output is sorted and stable: the same site gives
//! byte-identical files, so the layer digest only changes with the content.
//!
//! ```text
//! RUN --mount=type=bind,source=plugins,target=/plugins \
//!     /plugins/asset-manifest.wasm /srv/site --copy
//! ```

use std::io::Read;
use std::path::Path;

use kiln_guest::fs::EntryKind;
use kiln_guest::{Context, Error, Result, Step};
use sha2::{Digest, Sha256};

/// Name of the manifest, written at the root of the site.
const MANIFEST: &str = "asset-manifest.json";

fn main() -> std::process::ExitCode {
    kiln_guest::run(generate)
}

fn content_type(path: &str) -> &'static str {
    match path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .as_deref()
    {
        Some("html" | "htm") => "text/html",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("wasm") => "application/wasm",
        Some("txt" | "md") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// `dir/name.ext` -> `dir/name.<8 hex>.ext`.
fn fingerprinted(path: &str, hash: &str) -> String {
    let (dir, file) = match path.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), path),
    };
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}{stem}.{}.{ext}", &hash[..8]),
        _ => format!("{dir}{file}.{}", &hash[..8]),
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn generate(mut step: Step) -> Result<()> {
    let copy = step.args.flag("--copy");
    let root = step
        .args
        .positional()
        .ok_or_else(|| Error::new("usage: asset-manifest SITE_DIR [--copy]").with_code(2))?;
    step.args.finish()?;
    let root = Path::new(&root);
    let mut assets = serde_json::Map::new();
    for entry in kiln_guest::fs::walk(root)? {
        let rel = entry.path.to_string_lossy().replace('\\', "/");
        if entry.kind != EntryKind::File || rel == MANIFEST {
            continue;
        }
        let hash = sha256_file(&root.join(&entry.path))?;
        let name = fingerprinted(&rel, &hash);
        if copy {
            std::fs::copy(root.join(&entry.path), root.join(&name))
                .with_context(|| format!("copying {rel}"))?;
        }
        assets.insert(
            rel.clone(),
            serde_json::json!({
                "size": entry.size,
                "sha256": hash,
                "type": content_type(&rel),
                "fingerprinted": name,
            }),
        );
    }
    let count = assets.len();
    let mut json = serde_json::to_vec_pretty(&serde_json::json!({ "assets": assets }))
        .map_err(|e| Error::new(format!("encoding the manifest: {e}")))?;
    json.push(b'\n');
    kiln_guest::fs::write_atomic(root.join(MANIFEST), &json)?;
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(
        &mut stdout,
        format!("{count} assets in {}\n", root.join(MANIFEST).display()).as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_keep_the_extension() {
        assert_eq!(
            fingerprinted("css/site.css", "3f2a1b4c99"),
            "css/site.3f2a1b4c.css"
        );
        assert_eq!(fingerprinted("LICENSE", "abcdef0123"), "LICENSE.abcdef01");
        assert_eq!(
            fingerprinted("a/.hidden", "abcdef0123"),
            "a/.hidden.abcdef01"
        );
        assert_eq!(content_type("index.HTML"), "text/html");
    }
}
