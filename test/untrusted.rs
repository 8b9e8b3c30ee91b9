//! Untrusted inputs (#25): the release state in the bucket is read as input. A state that names
//! keys the pipe never writes is refused before anything is written, by a deploy, a rollback
//! and a release list alike, and the scoped writer never sends a write outside the deployed
//! prefix and the state prefix.

use crate::support::proxy::{Proxy, Recorded};
use crate::support::*;

const STATE: &str = "site/.s3-deploy-pipe/state.json";

fn vars(endpoint: &str, dir: &std::path::Path, build: &str) -> Vec<(&'static str, String)> {
    let mut v = key_vars(endpoint);
    v.push(("S3_BUCKET", "tamper/site".into()));
    v.push(("LOCAL_PATH", dir.display().to_string()));
    v.push(("DELETE_FLAG", "true".into()));
    v.push(("RELEASE_HISTORY", "1".into()));
    v.push(("BITBUCKET_BUILD_NUMBER", build.into()));
    v
}

fn is_write(r: &Recorded) -> bool {
    r.is_put_object()
        || r.is_upload_part()
        || r.is_copy_object()
        || r.is_delete_objects()
        || r.is_delete_object()
        || r.is_create_multipart_upload()
        || r.is_complete_multipart_upload()
}

/// A `state.json` whose releases name, as their manifests, a key outside the prefix, a live
/// key of the site and another site's state: today's trim would have deleted them all.
#[test]
fn a_state_naming_foreign_keys_is_refused_before_anything_is_written() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "tamper");
    // Versioned, so that a rollback gets as far as reading the state.
    enable_versioning(&url, "tamper");
    put(&url, "tamper", "other/secret.txt", b"secret");
    put(&url, "tamper", "other/.s3-deploy-pipe/state.json", b"{}");
    let a = site(&[("index.html", b"A"), ("a.css", b"a")]);
    run_pipe(&as_refs(&vars(&url, a.path(), "1"))).assert_code(0);

    let mut state: serde_json::Value =
        serde_json::from_slice(&get(&url, "tamper", STATE)).expect("state.json");
    let real = state["releases"][0].clone();
    let releases = state["releases"].as_array_mut().expect("releases");
    for (i, victim) in [
        "other/secret.txt",
        "site/index.html",
        "other/.s3-deploy-pipe/state.json",
    ]
    .iter()
    .enumerate()
    {
        let mut r = real.clone();
        r["id"] = serde_json::json!(format!("fake{i}"));
        r["manifest"] = serde_json::json!(victim);
        releases.insert(0, r);
    }
    let tampered = serde_json::to_vec(&state).expect("json");
    put(&url, "tamper", STATE, &tampered);

    let proxy = Proxy::start(&url);
    let b = site(&[("index.html", b"B"), ("b.css", b"b")]);
    let run = run_pipe(&as_refs(&vars(&proxy.url(), b.path(), "2")));
    run.assert_code(1)
        .assert_contains("is not a release state this pipe wrote for this prefix")
        .assert_contains("other/.s3-deploy-pipe/state.json");
    assert!(!run.all().contains("Synced to"), "{}", run.all());
    let writes: Vec<String> = proxy
        .requests_where(is_write)
        .iter()
        .map(|r| format!("{} {}", r.method, r.decoded_path()))
        .collect();
    assert!(writes.is_empty(), "writes sent: {writes:?}");
    assert_eq!(get(&url, "tamper", "other/secret.txt"), b"secret");
    assert_eq!(
        get(&url, "tamper", "other/.s3-deploy-pipe/state.json"),
        b"{}"
    );
    assert_eq!(get(&url, "tamper", "site/index.html"), b"A");
    assert_eq!(
        get(&url, "tamper", STATE),
        tampered,
        "the state is left as it was"
    );

    // A rollback and a release list read the same state: refused too, with the reason.
    for extra in [("ROLLBACK", "previous"), ("RELEASES", "list")] {
        proxy.clear_requests();
        let mut v = vars(&proxy.url(), b.path(), "3");
        v.push((extra.0, extra.1.into()));
        run_pipe(&as_refs(&v))
            .assert_code(1)
            .assert_contains("is not a release state this pipe wrote for this prefix");
        assert!(proxy.requests_where(is_write).is_empty(), "{extra:?}");
    }
    assert_eq!(get(&url, "tamper", "other/secret.txt"), b"secret");
}

/// A state written for another prefix (two sites sharing one STATE_PREFIX) is refused: its
/// stale keys and releases are another site's.
#[test]
fn a_state_of_another_prefix_is_refused() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "tamper");
    let a = site(&[("index.html", b"A")]);
    let mut v = vars(&url, a.path(), "1");
    v.push(("STATE_PREFIX", "shared-state/".into()));
    run_pipe(&as_refs(&v)).assert_code(0);
    let mut other = vars(&url, a.path(), "2");
    other.retain(|(k, _)| *k != "S3_BUCKET");
    other.push(("S3_BUCKET", "tamper/other-site".into()));
    other.push(("STATE_PREFIX", "shared-state/".into()));
    run_pipe(&as_refs(&other))
        .assert_code(1)
        .assert_contains("it is the state of prefix \"site/\", not of \"other-site/\"");
    let written: Vec<String> = all_keys(&url, "tamper")
        .into_iter()
        .filter(|k| k.starts_with("other-site/"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}

// ---------------------------------------------------------------------------------------------
// Files on disk that change while the deploy runs (#25 items 2-4). Each change is made while
// the proxy holds a request at a gate, so it happens at a point the test controls.
// ---------------------------------------------------------------------------------------------

/// Run the pipe in the background; the caller changes files while a gate holds a request.
fn spawn(vars: &[(&'static str, String)]) -> std::process::Child {
    pipe_command(&as_refs(vars), None)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pipe")
}

/// Wait for the pipe, at most `secs` seconds: a pipe still running then is killed, and the
/// test fails (a deploy must never hang).
fn finish(mut child: std::process::Child, secs: u64) -> Run {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the pipe still ran after {secs} s: it hangs\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn file_vars(endpoint: &str, dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut v = key_vars(endpoint);
    v.push(("S3_BUCKET", "disk/site".into()));
    v.push(("LOCAL_PATH", dir.display().to_string()));
    v.push(("MAX_CONCURRENCY", "1".into()));
    v.push(("RELEASE_HISTORY", "0".into()));
    v
}

/// The listing: by then the scan is done, and nothing is uploaded yet.
fn listing() -> crate::support::proxy::Match {
    crate::support::proxy::Match::any()
        .method("GET")
        .query_contains("list-type=2")
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("cstr");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_file_swapped_for_a_link_after_the_scan_is_never_read() {
    use crate::support::proxy::{Action, Gate, Rule};
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "disk");
    let outside = tempfile::tempdir().expect("tmp");
    std::fs::write(outside.path().join("secret.txt"), b"SECRET OUTSIDE").expect("write");
    let dir = site(&[("index.html", b"<html>"), ("a.txt", b"site content")]);
    let proxy = Proxy::start(&url);
    let gate = Gate::new();
    proxy.set_rules(vec![
        Rule::new(listing(), Action::Hold(gate.clone())).times(1),
    ]);

    let child = spawn(&file_vars(&proxy.url(), dir.path()));
    gate.wait_arrivals(1);
    let a = dir.path().join("a.txt");
    std::fs::remove_file(&a).expect("rm");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), &a).expect("link");
    gate.release(1);
    let run = finish(child, 120);
    run.assert_code(1)
        .assert_contains("a.txt")
        .assert_contains("replaced by another file");
    for key in all_keys(&url, "disk") {
        assert_ne!(
            get(&url, "disk", &key),
            b"SECRET OUTSIDE",
            "{key} holds the outside file"
        );
    }
    assert!(!all_keys(&url, "disk").contains(&"site/a.txt".to_string()));
}

#[test]
fn a_fifo_in_place_of_a_file_fails_the_file_and_never_hangs() {
    use crate::support::proxy::{Action, Gate, Rule};
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "disk");
    let dir = site(&[("index.html", b"<html>"), ("a.txt", b"site content")]);
    let proxy = Proxy::start(&url);
    let gate = Gate::new();
    proxy.set_rules(vec![
        Rule::new(listing(), Action::Hold(gate.clone())).times(1),
    ]);

    let child = spawn(&file_vars(&proxy.url(), dir.path()));
    gate.wait_arrivals(1);
    let a = dir.path().join("a.txt");
    std::fs::remove_file(&a).expect("rm");
    mkfifo(&a);
    gate.release(1);
    finish(child, 120)
        .assert_code(1)
        .assert_contains("a.txt")
        .assert_contains("no longer a regular file");
}

#[test]
fn a_file_swapped_during_its_multipart_upload_is_read_from_what_was_opened() {
    use crate::support::proxy::{Action, Gate, Match, Rule};
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "disk");
    let body = deterministic_bytes(9 * 1024 * 1024, 7);
    let dir = site(&[("big.bin", &body)]);
    let outside = tempfile::tempdir().expect("tmp");
    std::fs::write(
        outside.path().join("other.bin"),
        deterministic_bytes(body.len(), 9),
    )
    .expect("write");
    let proxy = Proxy::start(&url);
    let gate = Gate::new();
    let create = Match::any().method("POST").query_contains("uploads");
    proxy.set_rules(vec![Rule::new(create, Action::Hold(gate.clone())).times(1)]);

    let child = spawn(&file_vars(&proxy.url(), dir.path()));
    // The file is open by now: CreateMultipartUpload comes after it.
    gate.wait_arrivals(1);
    let big = dir.path().join("big.bin");
    std::fs::remove_file(&big).expect("rm");
    std::os::unix::fs::symlink(outside.path().join("other.bin"), &big).expect("link");
    gate.release(1);
    finish(child, 120).assert_code(0);
    assert!(
        get(&url, "disk", "site/big.bin") == body,
        "the object is not the opened file"
    );
}

#[test]
fn a_file_that_keeps_changing_never_replaces_the_object_with_a_mix() {
    use crate::support::proxy::{Action, Gate, Match, Rule};
    use std::io::Write;
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "disk");
    let v0 = deterministic_bytes(9 * 1024 * 1024, 1);
    let dir = site(&[("big.bin", &v0)]);
    run_pipe(&as_refs(&file_vars(&url, dir.path()))).assert_code(0);
    let big = dir.path().join("big.bin");
    std::fs::write(&big, deterministic_bytes(v0.len(), 2)).expect("write v1");

    let proxy = Proxy::start(&url);
    let gate = Gate::new();
    // Part 1 of every attempt is held; meanwhile the file is rewritten in place (same inode,
    // same size), so part 2 would be of another version than part 1.
    let part1 = Match::any().method("PUT").query_contains("partNumber=1");
    proxy.set_rules(vec![Rule::new(part1, Action::Hold(gate.clone()))]);
    let child = spawn(&file_vars(&proxy.url(), dir.path()));
    for attempt in 1..=3u8 {
        gate.wait_arrivals(usize::from(attempt));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .expect("open");
        f.write_all(&deterministic_bytes(v0.len(), 10 + attempt))
            .expect("rewrite");
        drop(f);
        gate.release(usize::from(attempt));
    }
    let run = finish(child, 180);
    run.assert_code(1).assert_contains("kept changing");
    assert!(
        get(&url, "disk", "site/big.bin") == v0,
        "the previous object was replaced"
    );
    let completes = proxy
        .requests_where(|r| r.is_complete_multipart_upload())
        .len();
    let aborts = proxy
        .requests_where(|r| r.is_abort_multipart_upload())
        .len();
    assert_eq!((completes, aborts), (0, 3), "{}", run.all());
    assert_eq!(open_uploads(&url, "disk"), 0);
}

/// Read, change and write back the gzip manifest of release `index` of the state.
fn tamper_manifest(url: &str, index: usize, change: impl Fn(&mut serde_json::Value)) {
    use std::io::Read;
    let state: serde_json::Value =
        serde_json::from_slice(&get(url, "tamper", STATE)).expect("state.json");
    let key = state["releases"][index]["manifest"]
        .as_str()
        .expect("manifest key")
        .to_string();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&get(url, "tamper", &key)[..])
        .read_to_end(&mut json)
        .expect("gunzip");
    let mut m: serde_json::Value = serde_json::from_slice(&json).expect("manifest");
    change(&mut m);
    write_manifest(url, &key, &m);
}

/// Write `manifest` to `key` as the pipe stores manifests: gzip-compressed JSON.
fn write_manifest(url: &str, key: &str, manifest: &serde_json::Value) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(manifest).expect("json"))
        .expect("gzip");
    put(url, "tamper", key, &gz.finish().expect("gzip"));
}

/// A rollback reads the manifest of the release it restores: one that lists no objects where
/// state.json says there were some, or that asks restores to set an ACL this step would never
/// set, is refused before anything is written.
#[test]
fn a_rollback_refuses_a_manifest_it_could_not_have_written() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "tamper");
    enable_versioning(&url, "tamper");
    let a = site(&[("index.html", b"A"), ("a.css", b"a")]);
    let b = site(&[("index.html", b"B"), ("b.css", b"b")]);
    let mut va = vars(&url, a.path(), "1");
    va.retain(|(k, _)| *k != "RELEASE_HISTORY");
    let mut vb = vars(&url, b.path(), "2");
    vb.retain(|(k, _)| *k != "RELEASE_HISTORY");
    run_pipe(&as_refs(&va)).assert_code(0);
    run_pipe(&as_refs(&vb)).assert_code(0);
    let proxy = Proxy::start(&url);
    let mut rollback = vars(&proxy.url(), b.path(), "3");
    rollback.retain(|(k, _)| *k != "RELEASE_HISTORY");
    rollback.push(("ROLLBACK", "previous".into()));

    tamper_manifest(&url, 0, |m| m["objects"] = serde_json::json!([]));
    run_pipe(&as_refs(&rollback))
        .assert_code(1)
        .assert_contains("lists 0 objects, and state.json says the release had 2");
    assert!(proxy.requests_where(is_write).is_empty());
    assert_eq!(get(&url, "tamper", "site/index.html"), b"B");

    tamper_manifest(&url, 0, |m| {
        // The first tamper emptied the objects: write them back, with a fingerprint of their own.
        let fp = "0123456789abcdef";
        m["objects"] = serde_json::json!([
            {"k": "a.css", "e": "0cc175b9c0f1b6a831c399e269772661", "s": 1, "f": fp, "v": "x"},
            {"k": "index.html", "e": "7fc56270e7a70fa81a5935b72eacbe29", "s": 1, "f": fp, "v": "y"}
        ]);
        m["copy"] = serde_json::json!({ fp: {"acl": "public-read"} });
    });
    proxy.clear_requests();
    run_pipe(&as_refs(&rollback))
        .assert_code(1)
        .assert_contains("asks its restores to set ACL public-read");
    assert!(proxy.requests_where(is_write).is_empty());
    assert_eq!(get(&url, "tamper", "site/index.html"), b"B");
}

/// Variables that would put the site into its own state, the state into the site, or
/// unbounded text into the release record, are refused before anything is sent (exit 2).
#[test]
fn variables_that_would_mix_site_and_state_are_refused() {
    let dir = site(&[("index.html", b"A"), ("d00/x.css", b"x")]);
    let cases: [(&[(&'static str, &str)], &str); 5] = [
        (
            &[("STATE_PREFIX", "site/d00")],
            "✖ STATE_PREFIX: \"site/d00/\" is inside the deployed prefix \"site/\"",
        ),
        (
            &[("S3_BUCKET", "tamper/site/.s3-deploy-pipe")],
            "✖ S3_BUCKET: the prefix \"site/.s3-deploy-pipe/\" is inside a .s3-deploy-pipe folder",
        ),
        (
            &[("BITBUCKET_BUILD_NUMBER", &"9".repeat(100_000))],
            "✖ BITBUCKET_BUILD_NUMBER: is over 64 characters",
        ),
        (
            &[("BITBUCKET_COMMIT", "abc\n✔ Synced to s3://forged")],
            "✖ BITBUCKET_COMMIT: is over 64 characters or has control characters",
        ),
        (&[("DELETE_GRACE", "99999999999999999999s")], "is too large"),
    ];
    for (extra, expected) in cases {
        // Nothing is listening there: a run that got past the configuration would fail with
        // exit 1, not 2.
        let mut v = vars("http://127.0.0.1:9", dir.path(), "1");
        for (k, val) in extra {
            v.retain(|(name, _)| name != k);
            v.push((k, val.to_string()));
        }
        run_pipe(&as_refs(&v))
            .assert_code(2)
            .assert_contains(expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Property: whatever state.json and the manifests say, a deploy, a rollback and a list write
// only the two allowed key sets, and never panic.
// ---------------------------------------------------------------------------------------------

/// Whether the pipe may write `key` (deployed prefix `site/`, default state prefix).
fn allowed_key(key: &str) -> bool {
    let state = "site/.s3-deploy-pipe/";
    if let Some(rest) = key.strip_prefix(state) {
        return rest == "state.json"
            || rest
                .strip_prefix("releases/")
                .and_then(|n| n.strip_suffix(".json.gz"))
                .and_then(|n| n.split_once('-'))
                .is_some_and(|(t, id)| {
                    !t.is_empty()
                        && t.bytes().all(|b| b.is_ascii_digit())
                        && id.len() <= 64
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                });
    }
    key.strip_prefix("site/").is_some_and(|rel| {
        !rel.is_empty()
            && !rel
                .split('/')
                .any(|s| s == ".s3-deploy-pipe" || s == "." || s == "..")
    })
}

/// Every key a write request names: its path's key, and each `<Key>` of a DeleteObjects.
fn written_keys(r: &Recorded) -> Vec<String> {
    if r.is_delete_objects() {
        let body = r.body_str();
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
            .map(|k| {
                k.replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
            })
            .collect()
    } else {
        r.s3_key().into_iter().collect()
    }
}

/// One random, often hostile, value of a string field of the state.
fn hostile_text(rng: &mut Rng, pool: &[String]) -> String {
    match rng.next() % 6 {
        0 => pool[rng.next() as usize % pool.len()].clone(),
        1 => "9".repeat(1 + rng.next() as usize % 70_000),
        2 => "a\n✔ forged\u{1b}[31m".to_string(),
        3 => String::new(),
        4 => format!("{}", rng.next()),
        _ => "../".repeat(1 + rng.next() as usize % 5) + "other/secret.txt",
    }
}

/// A fixed-seed generator (splitmix64): the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        u32::try_from((z ^ (z >> 31)) >> 32).unwrap_or(0)
    }
}

#[test]
fn hostile_release_state_never_makes_the_pipe_write_elsewhere_or_panic() {
    const CASES: usize = 10;
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "tamper");
    enable_versioning(&url, "tamper");
    put(&url, "tamper", "other/secret.txt", b"secret");
    put(&url, "tamper", "other/.s3-deploy-pipe/state.json", b"{}");
    let a = site(&[("index.html", b"A"), ("a.css", b"a")]);
    let b = site(&[("index.html", b"B"), ("b.css", b"b")]);
    let plain = |dir: &std::path::Path, build: &str, endpoint: &str| {
        let mut v = vars(endpoint, dir, build);
        v.retain(|(k, _)| *k != "RELEASE_HISTORY");
        v
    };
    run_pipe(&as_refs(&plain(a.path(), "1", &url))).assert_code(0);
    run_pipe(&as_refs(&plain(b.path(), "2", &url))).assert_code(0);
    let real: serde_json::Value =
        serde_json::from_slice(&get(&url, "tamper", STATE)).expect("state.json");
    let manifests: Vec<String> = real["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["manifest"].as_str().map(str::to_string))
        .collect();
    let pool: Vec<String> = [
        "other/secret.txt",
        "site/index.html",
        "other/.s3-deploy-pipe/state.json",
        "site/.s3-deploy-pipe/state.json",
        "site/.s3-deploy-pipe/releases/1-x.json.gz",
        "site/.s3-deploy-pipe/releases/../../other/secret.txt",
        "index.html",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(manifests.iter().cloned())
    .collect();

    let proxy = Proxy::start(&url);
    let mut rng = Rng(7);
    for case in 0..CASES {
        // A state: the real one with fields replaced, releases added or dropped.
        let mut state = real.clone();
        let releases = state["releases"].as_array_mut().expect("releases");
        for _ in 0..rng.next() % 4 {
            let mut r = releases[0].clone();
            r["manifest"] = serde_json::json!(hostile_text(&mut rng, &pool));
            r["id"] = serde_json::json!(hostile_text(&mut rng, &pool));
            releases.insert(0, r);
        }
        for r in releases.iter_mut() {
            match rng.next() % 5 {
                0 => r["manifest"] = serde_json::json!(hostile_text(&mut rng, &pool)),
                1 => r["commit"] = serde_json::json!(hostile_text(&mut rng, &pool)),
                2 => r["objects"] = serde_json::json!(rng.next() % 5),
                _ => {}
            }
        }
        if rng.next().is_multiple_of(3) {
            state["prefix"] = serde_json::json!(hostile_text(&mut rng, &pool));
        }
        if rng.next().is_multiple_of(2) {
            state["stale"] = serde_json::json!({ hostile_text(&mut rng, &pool): 0, "a.css": 0 });
        }
        put(
            &url,
            "tamper",
            STATE,
            &serde_json::to_vec(&state).expect("json"),
        );
        // A manifest of the previous release: hostile keys, counts and copy settings.
        let objects: Vec<serde_json::Value> = (0..rng.next() % 4)
            .map(|_| {
                serde_json::json!({"k": hostile_text(&mut rng, &pool), "e": "x", "s": 1,
                                   "f": "fp", "v": "v"})
            })
            .collect();
        let manifest = serde_json::json!({"schema": 1, "prefix": "site/", "objects": objects,
            "copy": {"fp": {"acl": "public-read"}}});
        write_manifest(&url, &manifests[0], &manifest);

        for extra in [
            None,
            Some(("ROLLBACK", "previous")),
            Some(("RELEASES", "list")),
        ] {
            proxy.clear_requests();
            let mut v = plain(b.path(), "3", &proxy.url());
            v.push(("DELETE_GRACE", "1s".into()));
            if let Some((k, val)) = extra {
                v.push((k, val.into()));
            }
            let run = run_pipe(&as_refs(&v));
            assert!(
                run.code == 0 || run.code == 1,
                "case {case} {extra:?}: exit {}\n{}",
                run.code,
                run.all()
            );
            assert!(
                !run.all().contains("panicked"),
                "case {case}: {}",
                run.all()
            );
            for r in proxy.requests_where(is_write) {
                for key in written_keys(&r) {
                    assert!(
                        allowed_key(&key),
                        "case {case} {extra:?}: wrote {key:?} ({} {})\nstate: {}",
                        r.method,
                        r.path,
                        serde_json::to_string(&state).unwrap_or_default()
                    );
                }
            }
        }
        assert_eq!(
            get(&url, "tamper", "other/secret.txt"),
            b"secret",
            "case {case}"
        );
        assert_eq!(
            get(&url, "tamper", "other/.s3-deploy-pipe/state.json"),
            b"{}"
        );
    }
}

/// A STATE_PREFIX inside another site's prefix: the state goes to a `.s3-deploy-pipe` folder
/// below it, which that site's deploys (deletes on) leave alone (#25 item 8).
#[test]
fn a_state_prefix_inside_another_site_survives_that_sites_deploys() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "tamper");
    let a = site(&[("index.html", b"A")]);
    let b = site(&[("index.html", b"B")]);
    let mut vb = vars(&url, b.path(), "1");
    vb.retain(|(k, _)| *k != "S3_BUCKET");
    vb.push(("S3_BUCKET", "tamper/other".into()));
    vb.push(("STATE_PREFIX", "site/b-state".into()));
    run_pipe(&as_refs(&vb)).assert_code(0);
    let b_state = "site/b-state/.s3-deploy-pipe/state.json";
    assert!(all_keys(&url, "tamper").contains(&b_state.to_string()));
    run_pipe(&as_refs(&vars(&url, a.path(), "2")))
        .assert_code(0)
        .assert_contains("0 deleted");
    assert!(
        all_keys(&url, "tamper").contains(&b_state.to_string()),
        "site's deploy deleted it"
    );
}
