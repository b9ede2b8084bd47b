//! The step cache, multi-stage builds and reproducible steps: what reruns
//! when an input changes, what a damaged cache does, sharing a cache
//! through a directory, and guests that embed the time and random bytes.

use std::collections::BTreeMap;
use std::fs;

use crate::run::GUESTS;
use crate::secrets::{files_containing, forms};
use crate::util::{Run, Sandbox, tool};

/// Layer steps (COPY, RUN, WORKDIR) of a plain-progress build, by their
/// name (`[build 2/4] COPY src/ /src/`), and whether each ran (`true`) or
/// came from the cache (`false`).
pub(crate) fn outcome(run: &Run) -> BTreeMap<String, bool> {
    let mut names = BTreeMap::new();
    let mut out = BTreeMap::new();
    for line in run.stderr.lines() {
        let Some((id, rest)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if let Some((_, text)) = rest.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            let layer_step = ["COPY", "RUN", "WORKDIR"]
                .iter()
                .any(|k| text.starts_with(k));
            if layer_step {
                names.insert(id.to_string(), rest.to_string());
            }
        } else if let Some(text) = names.get(id) {
            let layer_step = true;
            if rest == "CACHED" && layer_step {
                out.insert(text.clone(), false);
            } else if rest.starts_with("DONE") && layer_step {
                out.insert(text.clone(), true);
            }
        }
    }
    out
}

/// The steps that ran, each named by the first of `labels` its text contains.
pub(crate) fn ran(run: &Run, labels: &[&str]) -> Vec<String> {
    let steps = outcome(run);
    assert!(!steps.is_empty(), "no steps in:\n{}", run.stderr);
    let mut out = Vec::new();
    for (text, ran) in steps {
        if ran {
            let label = labels
                .iter()
                .find(|l| text.contains(*l))
                .unwrap_or_else(|| panic!("no label for {text}"));
            out.push(label.to_string());
        }
    }
    out
}

pub(crate) fn build(sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    sb.kiln(&all).ok()
}

pub(crate) fn image_id(run: &Run) -> String {
    run.stderr
        .lines()
        .find_map(|l| {
            l.split_once("writing image ")
                .map(|(_, r)| r.split(' ').next().unwrap().to_string())
        })
        .expect("an image id")
}

/// Three stages; `tools` and `build` run in parallel. Their first COPY
/// lines differ on purpose: two identical steps in parallel stages share a
/// cache key, and whether the second one is `CACHED` depends on which
/// finishes first (kiln does not yet merge identical steps as BuildKit
/// does), which would make "every step ran" a race.
pub(crate) const THREE_STAGES: &str = r#"FROM scratch AS tools
COPY bin/ /bin/
RUN ["probe", "write", "/tool.txt", "tool"]

FROM scratch AS build
COPY bin/probe /bin/probe
COPY src/ /src/
RUN ["probe", "copy", "/src/a.txt", "/out.txt"]

FROM scratch
COPY --from=tools /tool.txt /tool.txt
COPY --from=build /out.txt /out.txt
COPY --from=tools /bin/ /bin/
RUN ["probe", "cat", "/out.txt", "--", "cat", "/tool.txt"]
"#;

pub(crate) fn three_stage_context(sb: &Sandbox) {
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    sb.write("ctx/src/a.txt", "alpha\n");
    sb.write("ctx/Kilnfile", THREE_STAGES);
}

#[test]
fn three_stages_build_and_rebuild_from_the_cache() {
    let sb = Sandbox::new();
    three_stage_context(&sb);
    let first = build(&sb, &["-t", "three", "ctx"]);
    let steps = outcome(&first);
    assert_eq!(steps.len(), 9, "{steps:?}");
    assert!(steps.values().all(|ran| *ran), "{steps:?}");
    let id = image_id(&first);
    let out = sb
        .kiln(&[
            "run",
            "--rm",
            "three",
            "probe",
            "cat",
            "/out.txt",
            "--",
            "cat",
            "/tool.txt",
        ])
        .ok();
    assert_eq!(out.stdout, "alpha\ntool");

    // Unchanged: every step from the cache, the same image.
    let again = build(&sb, &["-t", "three", "ctx"]);
    assert!(outcome(&again).values().all(|ran| !ran), "{}", again.stderr);
    assert_eq!(image_id(&again), id);

    // --no-cache runs everything, --no-cache-filter one stage's steps.
    let forced = build(&sb, &["--no-cache", "ctx"]);
    assert!(outcome(&forced).values().all(|ran| *ran));
    assert_eq!(image_id(&forced), id);
    let filtered = build(&sb, &["--no-cache-filter", "build", "ctx"]);
    let stages = ["[build ", "[tools ", "[stage-2 "];
    assert_eq!(ran(&filtered, &stages), ["[build "; 3]);
    assert_eq!(image_id(&filtered), id);

    // --target builds only what the stage needs.
    let tools = build(&sb, &["--target", "tools", "ctx"]);
    assert_eq!(outcome(&tools).len(), 2, "{}", tools.stderr);
    let bad = sb
        .kiln(&["build", "--no-cache-filter", "nope", "ctx"])
        .fails(2);
    assert!(
        bad.stderr
            .contains("--no-cache-filter \"nope\": no such stage"),
        "{}",
        bad.stderr
    );
}

#[test]
fn each_change_reruns_exactly_the_steps_it_affects() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::create_dir_all(sb.path("ctx/plug")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/plug/step.wasm")).unwrap();
    sb.write("ctx/src/a.txt", "alpha\n");
    sb.write("tok.txt", "tok_first_value_0123456789");
    sb.write(
        "ctx/Kilnfile",
        r#"FROM scratch
COPY bin/ /bin/
RUN --mount=type=secret,id=tok ["probe", "exists", "/run/secrets/tok"]
RUN --mount=type=bind,source=plug,target=/plug ["/plug/step.wasm", "write", "/plug.txt", "x"]
ARG MODE=one
RUN ["probe", "write", "/mode.txt", "x"]
COPY src/ /src/
RUN ["probe", "cat", "/src/a.txt"]
"#,
    );
    let labels = [
        "COPY bin/",
        "secret",
        "plug",
        "mode.txt",
        "COPY src/",
        "cat",
    ];
    let output = std::cell::RefCell::new(String::new());
    let go = |extra: &[&str]| {
        let mut args = vec!["--secret", "id=tok,src=tok.txt"];
        args.extend_from_slice(extra);
        args.push("ctx");
        let run = build(&sb, &args);
        output
            .borrow_mut()
            .push_str(&(run.stdout.clone() + &run.stderr));
        ran(&run, &labels)
    };
    assert_eq!(go(&[]), labels);
    assert!(go(&[]).is_empty(), "an unchanged rebuild runs nothing");

    // A new secret value: the step that mounts it. It wrote nothing, so
    // the filesystem after it is the same and the rest is cached.
    sb.write("tok.txt", "tok_second_value_9876543210");
    assert_eq!(go(&[]), ["secret"]);
    // A new module (same behaviour, other bytes): the step that runs it.
    fs::copy(GUESTS[1].1, sb.path("ctx/plug/step.wasm")).unwrap();
    assert_eq!(go(&[]), ["plug"]);
    // A build arg: the steps that have it in their environment (every RUN
    // after its ARG, as in Docker), not the COPY between them.
    assert_eq!(go(&["--build-arg", "MODE=two"]), ["mode.txt", "cat"]);
    // A COPY source, by content: the COPY and the step that sees it.
    sb.write("ctx/src/a.txt", "alpha, changed\n");
    assert_eq!(go(&["--build-arg", "MODE=two"]), ["COPY src/", "cat"]);
    // Its mtime alone changes nothing.
    let f = fs::File::options()
        .write(true)
        .open(sb.path("ctx/src/a.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    assert!(go(&["--build-arg", "MODE=two"]).is_empty());

    // Exported, the cache holds no more of the secret than the store.
    let dest = format!("type=local,dest={},mode=max", sb.path("exported").display());
    assert!(go(&["--build-arg", "MODE=two", "--cache-to", &dest]).is_empty());

    // No form of either secret value is in any file kiln wrote (the store
    // with its cache and temp files, the exported cache) or in its output.
    for value in ["tok_first_value_0123456789", "tok_second_value_9876543210"] {
        for dir in [sb.store(), sb.path("exported")] {
            let hits = files_containing(&dir, &forms(value.as_bytes()));
            assert!(hits.is_empty(), "{value} in {hits:?}");
        }
        assert!(!output.borrow().contains(value));
    }
}

#[test]
fn a_damaged_cache_is_detected_and_rebuilt() {
    let sb = Sandbox::new();
    three_stage_context(&sb);
    let id = image_id(&build(&sb, &["-t", "three", "ctx"]));
    // Corrupt every layer blob the cache names, and one entry outright.
    let steps = sb.store().join("kiln/steps");
    let mut entries: Vec<_> = fs::read_dir(&steps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut blobs = std::collections::BTreeSet::new();
    for e in &entries {
        let entry: serde_json::Value = serde_json::from_slice(&fs::read(e).unwrap()).unwrap();
        if let Some(d) = entry["layer"]["digest"].as_str() {
            blobs.insert(d.trim_start_matches("sha256:").to_string());
        }
    }
    for hex in blobs {
        let blob = sb.store().join("blobs/sha256").join(hex);
        let mut bytes = fs::read(&blob).unwrap();
        bytes[0] ^= 0xff;
        fs::write(&blob, bytes).unwrap();
    }
    fs::write(&entries[0], b"{ not json").unwrap();
    let rebuilt = build(&sb, &["-t", "three", "ctx"]);
    // Steps whose layer was damaged ran again (a layer two steps share is
    // repaired by whichever runs first, and the other then uses it).
    assert!(
        outcome(&rebuilt).values().any(|ran| *ran),
        "{}",
        rebuilt.stderr
    );
    assert!(
        rebuilt.stderr.contains("the cached layer is unusable"),
        "{}",
        rebuilt.stderr
    );
    assert!(
        rebuilt.stderr.contains("ignoring a damaged cache entry"),
        "{}",
        rebuilt.stderr
    );
    assert_eq!(image_id(&rebuilt), id);
    // The layers were written again: the next build is all cache hits.
    let again = build(&sb, &["-t", "three", "ctx"]);
    assert!(outcome(&again).values().all(|ran| !ran), "{}", again.stderr);
}

#[test]
fn the_cache_travels_through_an_oci_layout_directory() {
    let a = Sandbox::new();
    three_stage_context(&a);
    let dir = a.path("cache");
    let dest = format!("type=local,dest={},mode=max", dir.display());
    let first = build(&a, &["--cache-to", &dest, "ctx"]);
    assert!(first.stderr.contains("in the cache"), "{}", first.stderr);
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:kiln-cache:latest", dir.display()),
        ],
    );
    assert!(raw.contains("application/vnd.kiln.cache.v1"), "{raw}");

    // Another store, another copy of the context: all from the cache.
    let b = Sandbox::new();
    three_stage_context(&b);
    let src = format!("type=local,src={}", dir.display());
    let second = build(&b, &["--cache-from", &src, "ctx"]);
    assert!(
        outcome(&second).values().all(|ran| !ran),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("imported from --cache-from"));
    assert_eq!(image_id(&second), image_id(&first));
    // The imported layers are whole: the image runs.
    let out = b
        .kiln(&[
            "run",
            "--rm",
            &image_id(&second),
            "probe",
            "cat",
            "/out.txt",
        ])
        .ok();
    assert_eq!(out.stdout, "alpha\n");

    // mode=min (the default) exports the target stage's steps only.
    let min = a.path("min");
    build(
        &a,
        &[
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
            "ctx",
        ],
    );
    let c = Sandbox::new();
    three_stage_context(&c);
    let third = build(
        &c,
        &[
            "--cache-from",
            &format!("type=local,src={}", min.display()),
            "ctx",
        ],
    );
    let ran_steps: Vec<bool> = outcome(&third).into_values().collect();
    assert!(
        ran_steps.contains(&true) && ran_steps.contains(&false),
        "{}",
        third.stderr
    );

    // Bad specs say what was expected.
    let e = b
        .kiln(&["build", "--cache-from", "type=gha,scope=x", "ctx"])
        .fails(2);
    assert!(
        e.stderr.contains("type=gha is not supported"),
        "{}",
        e.stderr
    );
    let e = b
        .kiln(&[
            "build",
            "--cache-from",
            &format!("type=local,src={}", b.path("ctx").display()),
            "ctx",
        ])
        .fails(2);
    assert!(e.stderr.contains("not an OCI image layout"), "{}", e.stderr);
    let e = b
        .kiln(&["build", "--cache-to", "type=local", "ctx"])
        .fails(2);
    assert!(e.stderr.contains("missing dest=DIR"), "{}", e.stderr);
}

#[test]
fn prune_trims_the_cache() {
    let sb = Sandbox::new();
    three_stage_context(&sb);
    build(&sb, &["-t", "three", "ctx"]);
    sb.kiln(&["rmi", "three"]).ok();
    // The cache keeps the layers alive after the image is gone.
    let kept = sb.kiln(&["prune"]).ok();
    assert!(
        kept.stdout.contains("Deleted 0 cache entries"),
        "{}",
        kept.stdout
    );
    assert!(outcome(&build(&sb, &["ctx"])).values().all(|ran| !ran));
    // --all: untagged images and the whole cache.
    sb.kiln(&["prune", "--all"]).ok();
    let entries = || fs::read_dir(sb.store().join("kiln/steps")).map_or(0, |d| d.count());
    assert_eq!(entries(), 0);
    // --keep-storage: what only the cache holds, least recently used first.
    let fresh = build(&sb, &["-t", "three", "ctx"]);
    assert!(outcome(&fresh).values().all(|ran| *ran));
    // Entries whose layers an image holds cost nothing and stay; the
    // others go (the build stage's layers are not in the image).
    let before = entries();
    sb.kiln(&["prune", "--keep-storage", "0"]).ok();
    assert!(entries() < before);
    let rebuilt = build(&sb, &["-t", "three", "ctx"]);
    let stages = ["[build ", "[tools ", "[stage-2 "];
    assert!(
        !ran(&rebuilt, &stages).contains(&"[stage-2 ".to_string()),
        "{}",
        rebuilt.stderr
    );
    let before = entries();
    sb.kiln(&["rmi", "three"]).ok();
    let roomy = sb.kiln(&["prune", "--keep-storage", "1g"]).ok();
    assert!(
        roomy.stdout.contains("Deleted 0 cache entries"),
        "{}",
        roomy.stdout
    );
    let tight = sb.kiln(&["prune", "--keep-storage", "0"]).ok();
    assert!(
        !tight.stdout.contains("Deleted 0 cache entries"),
        "{}",
        tight.stdout
    );
    assert!(entries() < before);
    let run = build(&sb, &["ctx"]);
    assert!(outcome(&run).values().any(|ran| *ran), "{}", run.stderr);
    let bad = sb.kiln(&["prune", "--keep-storage", "lots"]).fails(2);
    assert!(bad.stderr.contains("is not a size"), "{}", bad.stderr);
}

#[test]
fn a_cached_layer_is_searched_for_new_secrets() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY bin/ /bin/\nRUN [\"probe\", \"write\", \"/conf\", \"key=leaky_value_0123456789\"]\n",
    );
    build(&sb, &["ctx"]);
    // The same step, now in a build that has that value as a secret: the
    // cached layer is searched before it is reused, and the build stops.
    sb.write("s.txt", "leaky_value_0123456789");
    let e = sb
        .kiln(&[
            "build",
            "--progress",
            "plain",
            "--secret",
            "id=s,src=s.txt",
            "ctx",
        ])
        .fails(1);
    assert!(
        e.stderr.contains("/conf contains secret \"s\""),
        "{}",
        e.stderr
    );
    let warned = build(
        &sb,
        &["--secret", "id=s,src=s.txt", "--secret-scan", "warn", "ctx"],
    );
    assert!(outcome(&warned).values().all(|ran| !ran));
    assert!(warned.stderr.contains("/conf contains secret \"s\""));
}

#[test]
fn source_date_epoch_makes_time_and_random_reproducible() {
    for (version, guest) in GUESTS {
        let stamp = |sb: &Sandbox, env: &[(&str, &str)]| {
            fs::create_dir_all(sb.path("ctx/bin")).unwrap();
            fs::copy(guest, sb.path("ctx/bin/probe")).unwrap();
            sb.write(
                "ctx/Kilnfile",
                "FROM scratch\nCOPY bin/ /bin/\nRUN [\"probe\", \"stamp\", \"/stamp\"]\n",
            );
            let id = sb
                .kiln_env(&["build", "-q", "--no-cache", "-t", "s", "ctx"], env)
                .ok()
                .stdout;
            let out = sb
                .kiln(&["run", "--rm", "s", "probe", "cat", "/stamp"])
                .ok()
                .stdout;
            (id, out)
        };
        let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
        let (a, sa) = stamp(&Sandbox::new(), &epoch);
        let (b, sb_) = stamp(
            &Sandbox::new(),
            &[
                ("SOURCE_DATE_EPOCH", "1700000000"),
                ("TZ", "Asia/Tokyo"),
                ("LANG", "de_DE.UTF-8"),
            ],
        );
        assert_eq!(a, b, "{version}: same epoch, same image");
        assert_eq!(sa, sb_);
        assert!(
            sa.starts_with("1700000000"),
            "{version}: the clock starts at the epoch: {sa}"
        );
        let (c, sc) = stamp(&Sandbox::new(), &[]);
        let (d, sd) = stamp(&Sandbox::new(), &[]);
        assert_ne!(
            c, d,
            "{version}: without an epoch, the real clock and random"
        );
        assert_ne!(
            sc.split(' ').nth(1),
            sd.split(' ').nth(1),
            "{version}: random differs"
        );
    }
}

/// Every file under `dir`, with its size.
fn files_under(dir: &std::path::Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, meta.len());
            }
        }
    }
    out
}

#[test]
fn a_copy_that_reads_its_files_again_to_find_itself_cached_writes_nothing() {
    // Every source's mtime changes (a fresh checkout): the COPY reads and
    // hashes them all again, and meanwhile writes its layer ahead, in case
    // it is new. It is cached: that layer is thrown away, and the store
    // holds no object more than after the first build, named or temporary.
    let sb = Sandbox::new();
    for i in 0..300 {
        let body = format!("line {i}\n").repeat(i + 1);
        sb.write(&format!("ctx/src/d{}/f{i:03}", i % 7), body);
    }
    sb.write("ctx/src/big", vec![7u8; 200 << 10]);
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY src/ /src/\n");
    for compression in ["zstd", "uncompressed"] {
        let output = format!("type=image,compression={compression}");
        let first = build(&sb, &["-o", &output, "ctx"]);
        assert_eq!(ran(&first, &["COPY"]), ["COPY"]);
        let objects = |sb: &Sandbox| {
            let mut all = files_under(&sb.store().join("blobs"));
            all.extend(files_under(&sb.store().join("kiln/layers")));
            all
        };
        let before = objects(&sb);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        for (path, _) in files_under(&sb.path("ctx/src")) {
            let f = fs::File::options()
                .write(true)
                .open(sb.path("ctx/src").join(path))
                .unwrap();
            f.set_modified(later).unwrap();
        }
        let again = build(&sb, &["-o", &output, "ctx"]);
        assert!(ran(&again, &["COPY"]).is_empty(), "{}", again.stderr);
        assert_eq!(objects(&sb), before, "{compression}");
        assert_eq!(
            files_under(&sb.store().join("kiln/tmp")),
            BTreeMap::new(),
            "{compression}: temp files left"
        );
    }
}

#[test]
fn a_secret_in_a_copied_file_stops_the_layer_written_ahead_and_leaves_nothing() {
    // A context file holds a secret's value: the COPY's layer, being
    // written while the files are hashed, meets it and stops; the build
    // fails, and no form of the value is in any file kiln wrote or in its
    // output.
    const VALUE: &str = "copied_secret_value_0123456789";
    let sb = Sandbox::new();
    for i in 0..200 {
        let body = match i {
            150 => format!("token={VALUE}\n"),
            _ => format!("line {i}\n").repeat(i + 1),
        };
        sb.write(&format!("ctx/src/d{}/f{i:03}", i % 5), body);
    }
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY src/ /src/\n");
    sb.write("s.txt", VALUE);
    for compression in ["zstd", "uncompressed"] {
        let output = format!("type=image,compression={compression}");
        let args = [
            "build",
            "--progress",
            "plain",
            "--secret",
            "id=s,src=s.txt",
            "-o",
            &output,
            "ctx",
        ];
        let run = sb.kiln(&args).fails(1);
        assert!(
            run.stderr.contains("/src/d0/f150 contains secret \"s\""),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains(VALUE) && !run.stdout.contains(VALUE));
        let hits = files_containing(&sb.store(), &forms(VALUE.as_bytes()));
        assert!(hits.is_empty(), "{compression}: {hits:?}");
    }
}
