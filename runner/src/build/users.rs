//! Resolving `user[:group]` (COPY --chown, WORKDIR ownership) against the
//! image's own `/etc/passwd` and `/etc/group`, never the host's.

use std::io::Read;

use crate::snapshot::{ImagePath, Node, Snapshot};
use crate::store::Store;

/// Largest passwd/group file read: these are small text tables.
const MAX_TABLE_BYTES: u64 = 4 << 20;

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`...). Without a
/// group, the gid is the uid, as Docker documents for `--chown`.
pub(super) fn resolve(
    store: &Store,
    snapshot: &Snapshot,
    spec: &str,
) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group == Some("") {
        return Err(format!(
            "invalid user {spec:?}: expected USER[:GROUP] (names or numeric ids)"
        ));
    }
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup(store, snapshot, "etc/passwd", user, 2)?,
    };
    let gid = match group {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(store, snapshot, "etc/group", g, 2)?,
        },
    };
    Ok((uid, gid))
}

/// Finds `name` in the colon-separated table at `path` and returns field `field`.
fn lookup(
    store: &Store,
    snapshot: &Snapshot,
    path: &str,
    name: &str,
    field: usize,
) -> Result<u32, String> {
    let table_path = ImagePath::parse(path).expect("constant path");
    let missing = || format!("unable to find {name:?}: the image has no /{path} that lists it");
    let resolved = snapshot
        .resolve(&table_path, true)
        .map_err(|e| e.to_string())?;
    let Some(Node::File(_, file)) = snapshot.get(&resolved) else {
        return Err(missing());
    };
    let mut text = String::new();
    store
        .open_content(file)
        .map_err(|e| e.to_string())?
        .take(MAX_TABLE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("reading /{path}: {e}"))?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(field).and_then(|v| v.parse().ok()))
        .ok_or_else(missing)
}
