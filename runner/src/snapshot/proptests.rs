//! [`Snapshot::apply`] against a model: the rules applied one path at a
//! time, each looking up everything it needs, as a runtime extracting the
//! layer's tar would. The fast path (a run of siblings checks its parent
//! once) must never make a different snapshot.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// The model: one change at a time, every parent looked up.
fn model_apply(nodes: &mut BTreeMap<ImagePath, Node>, changes: &ChangeSet) {
    fn remove_tree(nodes: &mut BTreeMap<ImagePath, Node>, path: &ImagePath) {
        nodes.retain(|p, _| p.is_root() || (p != path && !p.starts_with(path)));
    }
    fn put(nodes: &mut BTreeMap<ImagePath, Node>, path: &ImagePath, node: Node) {
        if path.is_root() {
            if let Node::Dir(_) = node {
                nodes.insert(ImagePath::root(), node);
            }
            return;
        }
        let mut missing = Vec::new();
        let mut up = path.parent();
        while !up.is_root() && !matches!(nodes.get(&up), Some(Node::Dir(_))) {
            missing.push(up.clone());
            up = up.parent();
        }
        let mtime = node.meta().mtime;
        for dir in missing.into_iter().rev() {
            remove_tree(nodes, &dir);
            nodes.insert(dir, Node::Dir(Meta::root(0o755, mtime)));
        }
        nodes.insert(path.clone(), node);
    }
    for (path, change) in changes {
        match change {
            Change::Whiteout => remove_tree(nodes, path),
            Change::Opaque(meta) => {
                remove_tree(nodes, path);
                put(nodes, path, Node::Dir(*meta));
            }
            Change::Put(node) => {
                if !node.is_dir() && nodes.get(path).is_some_and(Node::is_dir) {
                    remove_tree(nodes, path);
                }
                put(nodes, path, node.clone());
            }
            Change::Hardlink(target) => {
                if let Some(node) = nodes.get(target).cloned() {
                    remove_tree(nodes, path);
                    put(nodes, path, node);
                }
            }
        }
    }
}

/// Paths from a few names that sort around each other ("a", "a-b",
/// "a/b"), one to three deep.
fn path() -> impl Strategy<Value = ImagePath> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "a-b", "a0"]), 1..4)
        .prop_map(|names| ImagePath::parse(&names.join("/")).unwrap())
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        (0u32..3).prop_map(|m| Node::Dir(Meta::root(0o700 + m, i64::from(m)))),
        any::<u8>().prop_map(|n| Node::File(
            Meta::root(0o644, i64::from(n)),
            FileRef::loose(Digest::of(&[n]), 1)
        )),
        Just(Node::Symlink(Meta::root(0o777, 0), "a".into())),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => node().prop_map(Change::Put),
        1 => Just(Change::Whiteout),
        1 => Just(Change::Opaque(Meta::root(0o711, 5))),
        1 => path().prop_map(Change::Hardlink),
    ]
}

fn change_set() -> impl Strategy<Value = ChangeSet> {
    prop::collection::btree_map(path(), change(), 0..24)
}

proptest! {
    #![proptest_config(crate::proptests::config(512))]

    #[test]
    fn apply_makes_the_snapshot_the_model_makes(layers in prop::collection::vec(change_set(), 1..4)) {
        let mut snapshot = Snapshot::empty();
        let mut model = snapshot.nodes.clone();
        for layer in &layers {
            snapshot.apply(layer);
            model_apply(&mut model, layer);
            prop_assert_eq!(&snapshot.nodes, &model);
        }
    }
}
