//! The S3 sync end to end (issue 3): the real binary, the variables a pipeline sets, moto behind
//! a recording proxy. Each test is one scenario and asserts real outcomes: the objects, their
//! bytes and headers, and the requests the proxy saw.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::proxy::{Action, Match, Proxy, Recorded, Rule};
use crate::support::stage::*;
use crate::support::*;

/// The files of a small site.
const SITE: &[(&str, &[u8])] = &[
    (
        "index.html",
        b"<!doctype html><link rel=stylesheet href=a.css><h1>hi</h1>",
    ),
    ("about/index.html", b"<h1>about</h1>"),
    ("a.css", b"h1{color:red}"),
    ("js/app.js", b"console.log(1)"),
    ("data.json", b"{\"a\":1}"),
    (
        "img/logo.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    ),
];

fn site_keys() -> Vec<String> {
    let mut k: Vec<String> = SITE.iter().map(|(rel, _)| rel.to_string()).collect();
    k.sort();
    k
}

// ---------------------------------------------------------------------------------------------
// 1. First sync
// ---------------------------------------------------------------------------------------------

#[test]
fn first_sync_uploads_every_file_with_its_bytes_and_content_type() {
    let stage = Stage::new("bucket");
    let files: &[(&str, &[u8])] = &[
        ("index.html", b"<h1>hi</h1>"),
        ("a.css", b"h1{color:red}"),
        ("js/app.js", b"console.log(1)"),
        ("data.json", b"{\"a\":1}"),
        ("img/logo.svg", b"<svg/>"),
        ("robots.txt", b"User-agent: *"),
        (".well-known/x", b"well known"),
        (".htaccess", b"Deny from all"),
        ("empty.txt", b""),
    ];
    let dir = site(files);
    let local = shown(dir.path());

    let run = stage.sync(dir.path(), &[]);
    run.assert_code(0)
        .assert_contains(&format!("upload: {local}/a.css to s3://bucket/a.css"))
        .assert_contains(&format!(
            "upload: {local}/.well-known/x to s3://bucket/.well-known/x"
        ))
        .assert_contains(&format!(
            "upload: {local}/empty.txt to s3://bucket/empty.txt"
        ));
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("✔ "), "last line: {last:?}\n{}", run.all());

    let mut want: Vec<String> = files.iter().map(|(k, _)| k.to_string()).collect();
    want.sort();
    assert_eq!(stage.keys(), want);
    stage.assert_holds(files);
    // No extension: no Content-Type is sent (as aws-cli), so S3 answers its default.
    for put in stage.seen(|r| r.is_put_object() && r.s3_key().as_deref() == Some(".htaccess")) {
        assert_eq!(put.header("content-type"), None, "{:?}", put.headers);
    }
    stage.assert_content_types(&[
        ("index.html", "text/html"),
        ("a.css", "text/css"),
        ("js/app.js", "text/javascript"),
        ("data.json", "application/json"),
        ("img/logo.svg", "image/svg+xml"),
        ("robots.txt", "text/plain"),
        ("empty.txt", "text/plain"),
        (".htaccess", "binary/octet-stream"),
        (".well-known/x", "binary/octet-stream"),
    ]);
    assert_eq!(stage.count(Recorded::is_put_object), files.len());
}

#[test]
fn a_prefix_maps_local_paths_below_it_and_nothing_outside_it_is_touched() {
    let stage = Stage::new("bucket");
    stage.put("other/keep.css", b"outside the prefix");
    stage.put("some/prefix-sibling.css", b"outside the prefix too");
    stage.put("some/prefix/stale.css", b"old");
    // A clone directory with the build output in dist/, as in a pipeline.
    let clone = site(&[("dist/a/b.css", b"b{}"), ("dist/index.html", b"<p>")]);

    let run = stage.sync_in(
        Some(clone.path()),
        "./dist/",
        &[("S3_BUCKET", "bucket/some/prefix"), ("DELETE_FLAG", "true")],
    );
    // aws-cli names local files relative to the working directory.
    run.assert_code(0)
        .assert_contains("upload: dist/a/b.css to s3://bucket/some/prefix/a/b.css")
        .assert_contains("delete: s3://bucket/some/prefix/stale.css");
    assert_eq!(
        stage.keys(),
        strings(&[
            "other/keep.css",
            "some/prefix-sibling.css",
            "some/prefix/a/b.css",
            "some/prefix/index.html",
        ])
    );
    assert_eq!(stage.get("some/prefix/a/b.css"), b"b{}");
    // The listing asked for the prefix only.
    let lists = stage.seen(Recorded::is_list_objects);
    assert!(!lists.is_empty());
    for l in &lists {
        assert_eq!(
            l.query_param("prefix").as_deref(),
            Some("some/prefix/"),
            "{}",
            l.query
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2–4. What a resync uploads
// ---------------------------------------------------------------------------------------------

#[test]
fn resync_after_a_fresh_clone_uploads_nothing_by_checksum_and_everything_by_mtime() {
    let stage = Stage::new("bucket");
    let dir = site(SITE);
    stage.sync(dir.path(), &[]).assert_code(0);
    assert_eq!(stage.keys(), site_keys());

    // A fresh CI clone: every mtime is new, no content changed.
    touch_all(dir.path(), 3600);
    let run = stage.sync(dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(stage.count(Recorded::is_put_object), 0, "{}", run.all());
    assert_eq!(stage.count(Recorded::is_upload_part), 0);
    assert_eq!(stage.count(Recorded::is_copy_object), 0);
    assert!(stage.count(Recorded::is_head_object) <= 1);
    assert!(!run.stdout.contains("upload:"), "{}", run.stdout);

    // aws-cli's rule: a newer local file is uploaded, so everything goes again.
    let run = stage.sync(dir.path(), &[("SYNC_COMPARE", "size-and-mtime")]);
    run.assert_code(0);
    assert_eq!(stage.put_keys(), site_keys(), "{}", run.all());
}

#[test]
fn one_changed_file_is_the_only_put() {
    let stage = Stage::new("bucket");
    let dir = site(SITE);
    stage.sync(dir.path(), &[]).assert_code(0);

    write_files(dir.path(), &[("a.css", b"h1{color:blue;margin:0}")]);
    touch_all(dir.path(), 60);
    let run = stage.sync(dir.path(), &[]);
    run.assert_code(0).assert_contains(&format!(
        "upload: {}/a.css to s3://bucket/a.css",
        shown(dir.path())
    ));
    assert_eq!(stage.put_keys(), strings(&["a.css"]));
    assert_eq!(stage.count(Recorded::is_copy_object), 0);
    assert_eq!(stage.get("a.css"), b"h1{color:blue;margin:0}");
}

#[test]
fn a_same_size_edit_is_caught_by_checksum_and_missed_by_size_only() {
    let stage = Stage::new("bucket");
    let dir = site(&[("a.txt", b"hello world"), ("b.css", b"b{}")]);
    stage.sync(dir.path(), &[]).assert_code(0);
    write_files(dir.path(), &[("a.txt", b"HELLO world")]);

    for size_only in [("SYNC_COMPARE", "size-only"), ("EXTRA_ARGS", "--size-only")] {
        let run = stage.sync(dir.path(), &[size_only]);
        run.assert_code(0);
        assert_eq!(
            stage.count(Recorded::is_put_object),
            0,
            "{size_only:?}\n{}",
            run.all()
        );
        assert_eq!(stage.get("a.txt"), b"hello world", "{size_only:?}");
    }

    let run = stage.sync(dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(stage.put_keys(), strings(&["a.txt"]), "{}", run.all());
    assert_eq!(stage.get("a.txt"), b"HELLO world");
}

// ---------------------------------------------------------------------------------------------
// 5. Header settings
// ---------------------------------------------------------------------------------------------

#[test]
fn changed_header_settings_are_reapplied_by_copy_without_reuploading() {
    let stage = Stage::new("bucket");
    let dir = site(SITE);
    stage
        .sync(dir.path(), &[("CACHE_CONTROL", "max-age=60")])
        .assert_code(0);
    let etags = stage.etags();
    let types: BTreeMap<String, Option<String>> = site_keys()
        .into_iter()
        .map(|k| {
            let t = stage.headers(&k).get("content-type").cloned();
            (k, t)
        })
        .collect();

    // A dry run only tells.
    let run = stage.sync(
        dir.path(),
        &[("CACHE_CONTROL", "max-age=120"), ("DRY_RUN", "true")],
    );
    run.assert_code(0)
        .assert_contains("(dryrun) update headers: s3://bucket/a.css");
    assert_eq!(stage.writes(), Vec::<String>::new());
    assert_eq!(
        stage
            .headers("a.css")
            .get("cache-control")
            .map(String::as_str),
        Some("max-age=60")
    );

    let run = stage.sync(dir.path(), &[("CACHE_CONTROL", "max-age=120")]);
    run.assert_code(0)
        .assert_contains("Header settings changed since the last deploy");
    assert_eq!(stage.count(Recorded::is_put_object), 0, "{}", run.all());
    assert_eq!(stage.count(Recorded::is_upload_part), 0);
    assert_eq!(
        sorted_keys(&stage.seen(Recorded::is_copy_object)),
        site_keys()
    );
    assert_eq!(stage.etags(), etags, "no bytes changed");
    for (key, body) in SITE {
        let h = stage.headers(key);
        assert_eq!(
            h.get("cache-control").map(String::as_str),
            Some("max-age=120"),
            "{key}"
        );
        // MetadataDirective=REPLACE drops every header not sent again: the type must survive.
        assert_eq!(h.get("content-type"), types[*key].as_ref(), "{key}");
        assert_eq!(stage.get(key), *body, "{key}");
    }

    let run = stage.sync(dir.path(), &[("CACHE_CONTROL", "max-age=120")]);
    run.assert_code(0);
    assert_eq!(stage.count(Recorded::is_copy_object), 0, "{}", run.all());
    assert_eq!(stage.count(Recorded::is_put_object), 0);
    assert!(stage.count(Recorded::is_head_object) <= 1);
}

/// A re-apply of headers that stops halfway (a CopyObject refused) is finished by the next run
/// (issue 15, item 2: the group's sample was re-applied first, so the next run saw a fresh
/// fingerprint and left the rest with the old headers for good). Two ways to stop halfway:
/// the copy of a kind's sample fails (`js/app.js`: the other kinds are done), or the copy of
/// an object before the samples (`index.html`: every sample is held back).
#[test]
fn an_interrupted_header_reapply_is_finished_by_the_next_run() {
    for failing in ["js/app.js", "index.html"] {
        let stage = Stage::new("bucket");
        let dir = site(SITE);
        stage
            .sync(dir.path(), &[("CACHE_CONTROL", "max-age=60")])
            .assert_code(0);
        let cache = |key: &str| stage.headers(key).get("cache-control").cloned();

        stage.proxy.set_rules(vec![Rule::new(
            Match::any().method("PUT").path_contains(failing),
            Action::s3_error(403, "AccessDenied", "Access Denied"),
        )]);
        let run = stage.sync(dir.path(), &[("CACHE_CONTROL", "max-age=120")]);
        run.assert_code(1).assert_contains(failing);
        stage.proxy.clear_rules();
        let done: Vec<String> = site_keys()
            .into_iter()
            .filter(|k| cache(k).as_deref() == Some("max-age=120"))
            .collect();
        assert_eq!(cache(failing).as_deref(), Some("max-age=60"));
        assert!(done.len() < SITE.len() - 1, "{done:?}\n{}", run.all());
        if failing == "js/app.js" {
            assert!(!done.is_empty(), "a partial re-apply\n{}", run.all());
        } else {
            run.assert_contains("header update(s) held back until the others succeed");
        }

        let run = stage.sync(dir.path(), &[("CACHE_CONTROL", "max-age=120")]);
        run.assert_code(0)
            .assert_contains("Header settings changed since the last deploy");
        for key in site_keys() {
            assert_eq!(
                cache(&key).as_deref(),
                Some("max-age=120"),
                "{failing}: {key}"
            );
        }
        let copied = sorted_keys(&stage.seen(Recorded::is_copy_object));
        assert!(copied.contains(&failing.to_string()), "{copied:?}");
        for key in &done {
            assert!(!copied.contains(key), "{key} was done already: {copied:?}");
        }
        assert_eq!(stage.count(Recorded::is_put_object), 0);

        // Converged: nothing more to do.
        stage
            .sync(dir.path(), &[("CACHE_CONTROL", "max-age=120")])
            .assert_code(0);
        assert_eq!(stage.count(Recorded::is_copy_object), 0);
        assert_eq!(stage.count(Recorded::is_head_object), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Large files
// ---------------------------------------------------------------------------------------------

#[test]
fn a_large_file_goes_multipart_and_a_resync_recognises_its_etag() {
    let stage = Stage::new("bucket");
    let big = noise(20 * MIB, 7);
    let dir = site(&[("video/big.bin", &big), ("index.html", b"<video>")]);

    let run = stage.sync(dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(stage.count(Recorded::is_create_multipart_upload), 1);
    assert_eq!(stage.count(Recorded::is_upload_part), 3, "8 + 8 + 4 MiB");
    assert_eq!(stage.count(Recorded::is_complete_multipart_upload), 1);
    assert_eq!(stage.put_keys(), strings(&["index.html"]));
    let etag = stage.etags()["video/big.bin"].clone();
    assert!(etag.ends_with("-3\""), "{etag}");
    assert_eq!(etag, multipart_etag(&big, 8 * MIB), "aws-cli's part size");
    assert!(stage.get("video/big.bin") == big, "content roundtrips");

    touch_all(dir.path(), 3600);
    let run = stage.sync(dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(stage.count(Recorded::is_upload_part), 0, "{}", run.all());
    assert_eq!(stage.count(Recorded::is_create_multipart_upload), 0);
    assert_eq!(stage.count(Recorded::is_put_object), 0);
    assert_eq!(stage.count(Recorded::is_copy_object), 0);
}

// ---------------------------------------------------------------------------------------------
// 7. Filters and delete
// ---------------------------------------------------------------------------------------------

#[test]
fn filters_decide_uploads_and_excluded_keys_are_never_deleted() {
    let stage = Stage::new("bucket");
    let dir = site(&[
        ("app.js", b"a()"),
        ("app.js.map", b"{}"),
        ("keep.map", b"{\"keep\":1}"),
        ("index.html", b"<p>"),
    ]);
    stage.put("old.js", b"stale");
    stage.put("old.map", b"excluded, so kept");
    stage.put("sub/old.css", b"stale");
    // A console's "folder" marker has no local counterpart and holds nothing: it stays.
    stage.put("sub/", b"");

    let run = stage.sync(
        dir.path(),
        &[
            ("EXTRA_ARGS", "--exclude '*.map' --include 'keep.map'"),
            ("DELETE_FLAG", "true"),
        ],
    );
    run.assert_code(0)
        .assert_contains("delete: s3://bucket/old.js")
        .assert_contains("delete: s3://bucket/sub/old.css");
    assert_eq!(
        stage.put_keys(),
        strings(&["app.js", "index.html", "keep.map"]),
        "a later --include wins over an earlier --exclude"
    );
    assert_eq!(
        stage.keys(),
        strings(&["app.js", "index.html", "keep.map", "old.map", "sub/"])
    );
    assert!(!run.all().contains("old.map"), "{}", run.all());

    // The other order: the later --exclude wins.
    create_bucket(&stage.s3(), "bucket-2");
    let run = stage.sync(
        dir.path(),
        &[
            ("S3_BUCKET", "bucket-2"),
            ("EXTRA_ARGS", "--include 'keep.map' --exclude '*.map'"),
        ],
    );
    run.assert_code(0);
    assert_eq!(
        keys(&stage.s3(), "bucket-2"),
        strings(&["app.js", "index.html"])
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Dry run
// ---------------------------------------------------------------------------------------------

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let stage = Stage::new("bucket");
    stage.put("stale.js", b"old");
    stage.put("a.css", b"old content");
    let dir = site(&[("a.css", b"a{}"), ("index.html", b"<p>")]);
    let local = shown(dir.path());

    for vars in [
        vec![("DRY_RUN", "true"), ("DELETE_FLAG", "true")],
        vec![("EXTRA_ARGS", "--dryrun --delete")],
    ] {
        let run = stage.sync(dir.path(), &vars);
        run.assert_code(0)
            .assert_contains(&format!(
                "(dryrun) upload: {local}/a.css to s3://bucket/a.css"
            ))
            .assert_contains(&format!(
                "(dryrun) upload: {local}/index.html to s3://bucket/index.html"
            ))
            .assert_contains("(dryrun) delete: s3://bucket/stale.js");
        assert_eq!(stage.writes(), Vec::<String>::new(), "{vars:?}");
        assert!(
            stage.proxy.requests().iter().all(|r| r.is_list_objects()
                || r.is_head_object()
                || (r.is_state() && r.method == "GET")),
            "only listing, HEAD and reading the release state: {:?}",
            stage
                .proxy
                .requests()
                .iter()
                .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
                .collect::<Vec<_>>()
        );
        assert_eq!(stage.keys(), strings(&["a.css", "stale.js"]));
        assert_eq!(stage.get("a.css"), b"old content");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. A failed upload
// ---------------------------------------------------------------------------------------------

#[test]
fn a_failed_upload_holds_back_html_and_every_delete() {
    let stage = Stage::new("bucket");
    stage.put("stale.js", b"old");
    let dir = site(&[
        ("app.js", b"a()"),
        ("broken.css", b"x{}"),
        ("img/logo.png", b"\x89PNG"),
        ("index.html", b"<link href=broken.css>"),
    ]);
    stage.proxy.set_rules(vec![
        Rule::new(
            Match::any().method("PUT").path_contains("broken.css"),
            Action::s3_internal_error(),
        )
        .probability(1.0),
    ]);

    let run = stage.sync(dir.path(), &[("DELETE_FLAG", "true")]);
    run.assert_code(1)
        .assert_contains("broken.css")
        .assert_contains("InternalError")
        .assert_contains("HTML upload(s) held back")
        .assert_contains("delete(s) not done");
    assert_eq!(stage.count(Recorded::is_delete_objects), 0);
    assert_eq!(stage.count(Recorded::is_delete_object), 0);
    assert!(
        stage.count(|r| r.is_put_object() && r.path.ends_with("/broken.css")) > 1,
        "a 500 is retried before the upload counts as failed"
    );
    let mut attempted = stage.put_keys();
    attempted.dedup();
    assert_eq!(
        attempted,
        strings(&["app.js", "broken.css", "img/logo.png"]),
        "index.html is never attempted"
    );
    assert_eq!(
        stage.keys(),
        strings(&["app.js", "img/logo.png", "stale.js"])
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Awkward key names
// ---------------------------------------------------------------------------------------------

/// Names that break naive URL encoding, and é both precomposed (NFC) and decomposed (NFD).
const AWKWARD: &[&str] = &[
    "with space.txt",
    "dir with space/ü/ñ.js",
    "\u{e9}.txt",
    "e\u{301}.txt",
    "plus+sign.css",
    "100%.txt",
    "pct%20encoded.txt",
    "hash#tag.txt",
    "question?.txt",
    "a&b=c.txt",
    "tilde~.txt",
    "brackets[1].txt",
    "parens(1).txt",
    "日本語/ファイル.html",
];

#[test]
fn awkward_key_names_roundtrip_byte_for_byte_resync_and_delete() {
    let stage = Stage::new("bucket");
    let files: Vec<(&str, &[u8])> = AWKWARD.iter().map(|n| (*n, n.as_bytes())).collect();
    let dir = site(&files);
    assert_ne!("\u{e9}.txt".as_bytes(), "e\u{301}.txt".as_bytes());

    stage.sync(dir.path(), &[]).assert_code(0);
    let mut want = strings(AWKWARD);
    want.sort();
    let got = stage.keys();
    assert_eq!(got, want);
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(a.as_bytes(), b.as_bytes(), "no normalization");
    }
    for name in AWKWARD {
        assert_eq!(stage.get(name), name.as_bytes(), "{name}");
    }

    touch_all(dir.path(), 3600);
    let run = stage.sync(dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(stage.count(Recorded::is_put_object), 0, "{}", run.all());
    assert_eq!(stage.count(Recorded::is_copy_object), 0);

    // New headers: CopyObject names each one as its own source (x-amz-copy-source).
    let run = stage.sync(dir.path(), &[("CACHE_CONTROL", "no-cache")]);
    run.assert_code(0);
    assert_eq!(stage.count(Recorded::is_put_object), 0, "{}", run.all());
    let mut copied = sorted_keys(&stage.seen(Recorded::is_copy_object));
    copied.dedup();
    let mut want = strings(AWKWARD);
    want.sort();
    assert_eq!(copied, want);
    for name in AWKWARD {
        let h = stage.headers(name);
        assert_eq!(
            h.get("cache-control").map(String::as_str),
            Some("no-cache"),
            "{name}"
        );
        assert_eq!(stage.get(name), name.as_bytes(), "{name}");
    }

    // Delete every other one.
    let (gone, kept): (Vec<_>, Vec<_>) = AWKWARD.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, name) in &gone {
        std::fs::remove_file(dir.path().join(name)).expect("rm");
    }
    let run = stage.sync(dir.path(), &[("DELETE_FLAG", "true")]);
    run.assert_code(0);
    let mut want: Vec<String> = kept.iter().map(|(_, n)| n.to_string()).collect();
    want.sort();
    assert_eq!(stage.keys(), want, "{}", run.all());
    assert_eq!(stage.count(Recorded::is_put_object), 0);
}

// ---------------------------------------------------------------------------------------------
// 11. Order
// ---------------------------------------------------------------------------------------------

#[test]
fn assets_go_first_then_html_then_deletes() {
    let stage = Stage::new("bucket");
    for k in ["old/a.js", "old/b.css", "old/index.html"] {
        stage.put(k, b"stale");
    }
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..12 {
        files.push((format!("assets/{i}.js"), format!("f{i}()").into_bytes()));
        files.push((format!("assets/{i}.css"), format!(".c{i}{{}}").into_bytes()));
    }
    for page in ["index.html", "a/index.html", "b/index.htm", "zz.html"] {
        files.push((page.to_string(), page.as_bytes().to_vec()));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let dir = site(&refs);

    let run = stage.sync(dir.path(), &[("DELETE_FLAG", "true")]);
    run.assert_code(0);
    let log = stage.proxy.requests();
    let positions = |pred: &dyn Fn(&Recorded) -> bool| -> Vec<usize> {
        log.iter()
            .enumerate()
            .filter(|(_, r)| pred(r))
            .map(|(i, _)| i)
            .collect()
    };
    let is_html = |r: &Recorded| {
        r.s3_key()
            .is_some_and(|k| k.ends_with(".html") || k.ends_with(".htm"))
    };
    let asset_puts = positions(&|r| r.is_put_object() && !is_html(r));
    let html_puts = positions(&|r| r.is_put_object() && is_html(r));
    let deletes = positions(&|r| r.is_delete_objects());
    assert_eq!(asset_puts.len(), 24);
    assert_eq!(html_puts.len(), 4);
    assert_eq!(deletes.len(), 1);
    let last_asset = asset_puts.iter().max().copied().unwrap_or_default();
    let last_put = *html_puts.iter().max().unwrap_or(&last_asset);
    assert!(
        html_puts.iter().all(|&i| i > last_asset),
        "HTML after every asset"
    );
    assert!(
        deletes.iter().all(|&i| i > last_put),
        "deletes after every upload"
    );
    assert!(stage.keys().iter().all(|k| !k.starts_with("old/")));
}

// ---------------------------------------------------------------------------------------------
// 12. Delete guards
// ---------------------------------------------------------------------------------------------

#[test]
fn max_delete_refuses_the_whole_run_before_touching_anything() {
    let stage = Stage::new("bucket");
    for k in ["a.js", "b.js", "c.js"] {
        stage.put(k, b"stale");
    }
    let dir = site(&[("new.css", b"n{}")]);

    let run = stage.sync(dir.path(), &[("DELETE_FLAG", "true"), ("MAX_DELETE", "2")]);
    run.assert_code(1)
        .assert_contains("would delete 3 objects, more than MAX_DELETE=2");
    assert_eq!(stage.writes(), Vec::<String>::new());
    assert_eq!(stage.keys(), strings(&["a.js", "b.js", "c.js"]));

    // At the limit, it goes through.
    let run = stage.sync(dir.path(), &[("DELETE_FLAG", "true"), ("MAX_DELETE", "3")]);
    run.assert_code(0);
    assert_eq!(stage.keys(), strings(&["new.css"]));
}

#[test]
fn an_empty_local_path_with_deletes_is_refused() {
    let stage = Stage::new("bucket");
    stage.put("index.html", b"<p>live site</p>");
    stage.put("a.css", b"a{}");
    let empty = tempfile::tempdir().expect("tmp");

    let run = stage.sync(empty.path(), &[("DELETE_FLAG", "true")]);
    run.assert_code(1).assert_contains(
        "LOCAL_PATH has no files to upload (after the filters) and deletes are on: this would delete all 2 objects under the target",
    );
    assert_eq!(stage.writes(), Vec::<String>::new());
    assert_eq!(stage.keys(), strings(&["a.css", "index.html"]));

    // With filters, the message counts what the filters would let it delete.
    let run = stage.sync(
        empty.path(),
        &[
            ("DELETE_FLAG", "true"),
            ("EXTRA_ARGS", "--exclude '*.html'"),
        ],
    );
    run.assert_code(1)
        .assert_contains("this would delete 1 of the 2 objects under the target");
    assert_eq!(stage.writes(), Vec::<String>::new());
}

/// Filters that leave no local file delete nothing (excluded keys are never deleted), so the
/// empty-source guard has nothing to guard: the run succeeds, as `aws s3 sync` does (issue 16).
#[test]
fn filters_that_exclude_every_file_delete_nothing_and_succeed_as_aws_cli() {
    let stage = Stage::new("bucket");
    create_bucket(&stage.s3(), "aws-cli");
    let dir = site(&[("index.html", b"<p>new</p>"), ("a.css", b"a{}")]);
    for bucket in ["bucket", "aws-cli"] {
        put(&stage.s3(), bucket, "index.html", b"<p>live site</p>");
        put(&stage.s3(), bucket, "old.js", b"old()");
    }
    for filters in ["--exclude '*'", "--exclude '*' --include 'nothing/*'"] {
        let run = stage.sync(
            dir.path(),
            &[("DELETE_FLAG", "true"), ("EXTRA_ARGS", filters)],
        );
        run.assert_code(0)
            .assert_contains("0 uploaded, 0 headers re-applied, 0 unchanged, 0 deleted");
        assert_eq!(stage.writes(), Vec::<String>::new(), "{filters}");
        assert_eq!(stage.keys(), strings(&["index.html", "old.js"]));
    }
    // aws-cli: the same flags succeed and leave the bucket as it was.
    aws_cli_sync(
        &stage.s3(),
        dir.path(),
        "s3://aws-cli/",
        &["--delete", "--exclude", "*"],
    );
    assert_eq!(
        keys(&stage.s3(), "aws-cli"),
        strings(&["index.html", "old.js"])
    );
    assert_eq!(
        get(&stage.s3(), "aws-cli", "index.html"),
        b"<p>live site</p>"
    );
}

// ---------------------------------------------------------------------------------------------
// 13. Parity with aws-cli
// ---------------------------------------------------------------------------------------------

#[test]
fn objects_match_what_aws_cli_makes_from_the_same_tree() {
    let moto = Moto::start();
    create_bucket(&moto.url(), "bucket-a");
    create_bucket(&moto.url(), "bucket-b");
    let big = noise(9 * MIB, 3);
    // The reference is aws-cli with this machine's Python `mimetypes`, which also reads
    // /etc/mime.types when present.
    let dir = site(&[
        ("index.html", b"<h1>hi</h1>"),
        ("css/site.css", b"h1{}"),
        ("js/app.js", b"a()"),
        ("data.json", b"{}"),
        ("img/logo.svg", b"<svg/>"),
        ("img/dot.png", b"\x89PNG\r\n"),
        ("robots.txt", b"User-agent: *"),
        ("app.wasm", b"\0asm"),
        ("LICENSE", b"MIT"),
        ("big.bin", &big),
    ]);
    aws_cli_sync(
        &moto.url(),
        dir.path(),
        "s3://bucket-a/",
        &[
            "--cache-control",
            "max-age=300",
            "--expires",
            "2030-01-31T00:00:00Z",
            "--content-encoding",
            "gzip",
            "--metadata",
            "a=1",
        ],
    );
    let mut vars = key_vars(&moto.url());
    vars.extend([
        ("S3_BUCKET", "bucket-b".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("CACHE_CONTROL", "max-age=300".to_string()),
        ("EXPIRES", "2030-01-31T00:00:00Z".to_string()),
        ("CONTENT_ENCODING", "gzip".to_string()),
        ("EXTRA_ARGS", "--metadata a=1".to_string()),
    ]);
    run_pipe(&as_refs(&vars)).assert_code(0);

    let theirs = list(&moto.url(), "bucket-a");
    let ours = list(&moto.url(), "bucket-b");
    assert_eq!(ours, theirs, "keys, sizes and ETags");
    assert!(
        ours.iter()
            .any(|o| o.key == "big.bin" && o.etag.ends_with("-2\""))
    );
    for o in &theirs {
        let want = headers_of(&moto.url(), "bucket-a", &o.key);
        let mut got = headers_of(&moto.url(), "bucket-b", &o.key);
        // Our documented fingerprint of the header settings.
        assert!(got.remove("meta-s3-deploy-pipe-headers").is_some());
        assert_eq!(got, want, "headers of {}", o.key);
    }
}

/// The first deploy after a migration from `aws s3 sync` (the Atlassian pipe) with the same
/// settings: the objects have no fingerprint but already the wanted headers, so nothing is
/// uploaded, copied or invalidated (issue 16, item 2: every object was copied, and through
/// PATHS=changed the whole site invalidated). One HEAD per kind of file; only the kind whose
/// headers differ (`.map`: aws-cli gives it no type) is copied.
#[test]
fn a_bucket_filled_by_aws_cli_with_the_same_settings_is_adopted_without_copies() {
    let stage = Stage::new("bucket");
    let distribution = create_distribution(&stage.s3());
    let dir = site(SITE);
    let flags = ["--cache-control", "max-age=300", "--metadata", "team=web"];
    aws_cli_sync(&stage.s3(), dir.path(), "s3://bucket/", &flags);
    let etags = stage.etags();
    let vars = [
        ("CACHE_CONTROL", "max-age=300"),
        ("EXTRA_ARGS", "--metadata team=web"),
        ("DELETE_FLAG", "true"),
        ("DISTRIBUTION_ID", distribution.as_str()),
    ];

    let run = stage.sync(dir.path(), &vars);
    run.assert_code(0)
        .assert_contains("6 unchanged object(s) written by another tool (no header fingerprint) already have the wanted headers: kept as they are")
        .assert_contains("0 uploaded, 0 headers re-applied, 6 unchanged, 0 deleted")
        .assert_contains("Nothing changed: no CloudFront invalidation needed");
    assert_eq!(stage.writes(), Vec::<String>::new(), "{}", run.all());
    // html, css, js, json, svg: one HEAD each (the group's sample is one of them).
    assert_eq!(stage.count(Recorded::is_head_object), 5);
    assert_eq!(stage.etags(), etags);
    assert!(invalidations(&stage.s3(), &distribution).is_empty());

    // A kind of file whose headers differ is re-applied, and only that one.
    write_files(dir.path(), &[("js/app.js.map", b"{\"version\":3}")]);
    aws_cli_sync(&stage.s3(), dir.path(), "s3://bucket/", &flags);
    assert_eq!(
        stage
            .headers("js/app.js.map")
            .get("content-type")
            .map(String::as_str),
        Some("binary/octet-stream")
    );
    let run = stage.sync(dir.path(), &vars);
    run.assert_code(0);
    assert_eq!(
        sorted_keys(&stage.seen(Recorded::is_copy_object)),
        strings(&["js/app.js.map"]),
        "{}",
        run.all()
    );
    assert_eq!(stage.count(Recorded::is_put_object), 0);
    assert_eq!(
        stage
            .headers("js/app.js.map")
            .get("content-type")
            .map(String::as_str),
        Some("text/plain")
    );
    let invs = invalidations(&stage.s3(), &distribution);
    assert_eq!(invs.len(), 1);
    assert_eq!(invs[0].paths, strings(&["/js/app.js.map"]));

    // Other settings: nothing is adopted any more, every object gets the new headers.
    let run = stage.sync(
        dir.path(),
        &[
            ("CACHE_CONTROL", "max-age=600"),
            ("EXTRA_ARGS", "--metadata team=web"),
        ],
    );
    run.assert_code(0);
    assert_eq!(stage.seen(Recorded::is_copy_object).len(), SITE.len() + 1);
    assert_eq!(
        stage
            .headers("a.css")
            .get("cache-control")
            .map(String::as_str),
        Some("max-age=600")
    );
}

/// `upload:` lines name local files exactly as aws-cli does, wherever LOCAL_PATH is from the
/// working directory (issue 16, item 5: an absolute path outside it printed as written).
#[test]
fn local_paths_print_as_aws_cli_prints_them() {
    let stage = Stage::new("bucket");
    create_bucket(&stage.s3(), "aws-cli");
    let top = tempfile::tempdir().expect("tmp");
    let site_dir = top.path().join("site");
    let work = top.path().join("work").join("clone");
    std::fs::create_dir_all(&work).expect("mkdir");
    write_files(&site_dir, &[("foo.txt", b"foo"), ("sub/bar.txt", b"bar")]);
    let absolute = site_dir.display().to_string();
    let cases: [(&Path, &str); 5] = [
        (&work, &absolute),
        (&work, "../../site"),
        (&site_dir, "."),
        (&site_dir, "./sub/.."),
        (top.path(), "site/"),
    ];
    for (n, (cwd, local)) in cases.into_iter().enumerate() {
        let upload_lines = |out: &str, bucket: &str| {
            let mut l: Vec<String> = out
                .lines()
                .filter(|l| l.starts_with("upload: "))
                .map(|l| l.replace(&format!("s3://{bucket}/"), "s3://B/"))
                .collect();
            l.sort();
            l
        };
        let theirs = Command::new(venv_bin().join("aws"))
            .args([
                "s3",
                "sync",
                local,
                &format!("s3://aws-cli/{n}/"),
                "--no-progress",
            ])
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", stage.s3())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("aws s3 sync");
        assert!(theirs.status.success(), "{theirs:?}");
        let theirs = upload_lines(&String::from_utf8_lossy(&theirs.stdout), "aws-cli");
        let bucket = format!("bucket/{n}");
        let run = stage.sync_in(Some(cwd), local, &[("S3_BUCKET", bucket.as_str())]);
        run.assert_code(0);
        let ours = upload_lines(&run.stdout, "bucket");
        assert_eq!(ours.len(), 2, "{}", run.all());
        assert_eq!(ours, theirs, "LOCAL_PATH={local} from {}", cwd.display());
    }
}

// ---------------------------------------------------------------------------------------------
// 14. Symlinks and unreadable files
// ---------------------------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn an_escaping_symlink_is_skipped_with_a_warning_and_its_key_is_kept() {
    let stage = Stage::new("bucket");
    let outside = site(&[("secret.txt", b"outside LOCAL_PATH")]);
    let dir = site(&[("index.html", b"<p>"), ("real/a.txt", b"a")]);
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("escape.txt"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("inside"))
        .expect("symlink");
    stage.put("escape.txt", b"deployed earlier");

    let run = stage.sync(dir.path(), &[("DELETE_FLAG", "true")]);
    run.assert_code(0)
        .assert_contains("escape.txt: symlink points outside LOCAL_PATH")
        .assert_contains("FOLLOW_SYMLINKS=true");
    assert_eq!(
        stage.keys(),
        strings(&["escape.txt", "index.html", "inside/a.txt", "real/a.txt"]),
        "links inside are followed; the skipped file's key is not deleted"
    );
    assert_eq!(stage.get("escape.txt"), b"deployed earlier");

    let run = stage.sync(dir.path(), &[("FOLLOW_SYMLINKS", "true")]);
    run.assert_code(0);
    assert!(
        !run.all().contains("symlink points outside"),
        "{}",
        run.all()
    );
    assert_eq!(stage.put_keys(), strings(&["escape.txt"]));
    assert_eq!(stage.get("escape.txt"), b"outside LOCAL_PATH");
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_is_warned_about_and_the_rest_is_deployed() {
    use std::os::unix::fs::PermissionsExt;
    let stage = Stage::new("bucket");
    let dir = site(&[("index.html", b"<p>"), ("locked.txt", b"secret")]);
    let locked = dir.path().join("locked.txt");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    // As root (as in many CI containers), mode 000 does not stop reading: then the file is
    // simply deployed, and there is nothing to warn about.
    let readable_anyway = std::fs::File::open(&locked).is_ok();

    let run = stage.sync(dir.path(), &[]);
    if readable_anyway {
        run.assert_code(0);
        assert_eq!(stage.keys(), strings(&["index.html", "locked.txt"]));
    } else {
        run.assert_code(1)
            .assert_contains("locked.txt: file is not readable");
        assert_eq!(stage.keys(), strings(&["index.html"]));
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// A folder the pipe cannot read is skipped, and no key below it is deleted (issue 16: it was
/// recorded as `locked`, without its `/`, and `locked/b.txt` was deleted). Skipped files fail
/// the step after everything else is done, unless ALLOW_SKIPPED_FILES=true. CI runs as root,
/// where nothing is unreadable: the pipe runs as `nobody` here.
#[cfg(unix)]
#[test]
fn keys_under_an_unreadable_folder_are_kept_and_skipped_files_fail_the_step() {
    use std::os::unix::fs::PermissionsExt;
    let how = match unprivileged() {
        Ok(how) => how,
        Err(why) => {
            eprintln!("SKIPPED keys_under_an_unreadable_folder…: {why}");
            return;
        }
    };
    let stage = Stage::new("bucket");
    for k in ["locked/b.txt", "locked/deep/c.txt", "secret.txt", "gone.js"] {
        stage.put(k, b"deployed earlier");
    }
    let dir = site(&[
        ("index.html", b"<p>"),
        ("locked/b.txt", b"b"),
        ("locked/deep/c.txt", b"c"),
        ("secret.txt", b"s"),
    ]);
    let locked = dir.path().join("locked");
    let secret = dir.path().join("secret.txt");
    let reports = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(reports.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let report = reports.path().join("report.json");
    let run = |extra: &[(&str, &str)]| {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        stage.proxy.clear_requests();
        let mut vars = key_vars(&stage.proxy.url());
        vars.push(("S3_BUCKET", stage.bucket.clone()));
        vars.push(("LOCAL_PATH", dir.path().display().to_string()));
        vars.push(("DELETE_FLAG", "true".to_string()));
        vars.push(("REPORT_FILE", report.display().to_string()));
        let mut all = as_refs(&vars);
        all.extend_from_slice(extra);
        let out = run_pipe_unprivileged(&how, &all, dir.path());
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        out
    };

    let out = run(&[]);
    out.assert_code(1)
        .assert_contains("locked: folder is not readable")
        .assert_contains("secret.txt: file is not readable")
        .assert_contains(
            "Sync to s3://bucket/: 2 file(s) or folder(s) in LOCAL_PATH were skipped or need attention (locked/, secret.txt;",
        )
        .assert_contains("ALLOW_SKIPPED_FILES=true");
    assert_eq!(
        stage.keys(),
        strings(&[
            "index.html",
            "locked/b.txt",
            "locked/deep/c.txt",
            "secret.txt"
        ]),
        "everything else was done (upload, delete of gone.js); nothing below locked/ was deleted"
    );
    assert_eq!(stage.get("locked/b.txt"), b"deployed earlier");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(json["exit_code"], 1);
    assert_eq!(
        json["sync"]["skipped"],
        serde_json::json!([
            {"path": "locked/", "reason": "folder is not readable (Permission denied (os error 13))"},
            {"path": "secret.txt", "reason": "file is not readable (Permission denied (os error 13))"},
        ])
    );

    // The old behaviour, for trees known to hold such files.
    let out = run(&[("ALLOW_SKIPPED_FILES", "true")]);
    out.assert_code(0)
        .assert_contains("locked: folder is not readable")
        .assert_contains("2 file(s) skipped (ALLOW_SKIPPED_FILES)");
    assert_eq!(stage.writes(), Vec::<String>::new());
    assert_eq!(
        stage.keys(),
        strings(&[
            "index.html",
            "locked/b.txt",
            "locked/deep/c.txt",
            "secret.txt"
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// 15. Errors name the fix
// ---------------------------------------------------------------------------------------------

#[test]
fn aws_errors_name_the_missing_bucket_or_permission() {
    let stage = Stage::new("bucket");
    let dir = site(&[("index.html", b"<p>"), ("a.css", b"a{}")]);

    stage
        .sync(dir.path(), &[("S3_BUCKET", "no-such-bucket")])
        .assert_code(1)
        .assert_contains("does not exist");

    stage.proxy.set_rules(vec![Rule::new(
        Match::any().method("GET").query_contains("list-type=2"),
        Action::s3_error(403, "AccessDenied", "Access Denied"),
    )]);
    stage
        .sync(dir.path(), &[])
        .assert_code(1)
        .assert_contains("s3:ListBucket on arn:aws:s3:::bucket");
    assert_eq!(stage.writes(), Vec::<String>::new());

    stage.proxy.set_rules(vec![Rule::new(
        Match::any().method("PUT"),
        Action::s3_error(403, "AccessDenied", "Access Denied"),
    )]);
    stage
        .sync(dir.path(), &[("ACL", "public-read")])
        .assert_code(1)
        .assert_contains("s3:PutObjectAcl");
    assert!(stage.keys().is_empty());
}

/// An S3-compatible store named by host name (MinIO at `http://minio:9000`, an emulator at
/// `localhost`), set up as a migrating aws-cli user does: `--endpoint-url` and nothing else.
/// aws-cli addresses such a store by path; so must the pipe, or `bucket.localhost` fails in DNS.
#[test]
fn a_custom_endpoint_by_host_name_is_addressed_by_path_as_aws_cli_does() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "by-name");
    let dir = site(&[("index.html", b"<h1>hi</h1>"), ("a/b.css", b"b{}")]);
    let endpoint = format!("http://localhost:{}", proxy.port());
    let vars: Vec<(&str, String)> = key_vars(&endpoint)
        .into_iter()
        .filter(|(k, _)| *k != "S3_FORCE_PATH_STYLE" && *k != "AWS_ENDPOINT_URL")
        .chain([
            ("S3_BUCKET", "by-name".to_string()),
            ("LOCAL_PATH", dir.path().display().to_string()),
            ("EXTRA_ARGS", format!("--endpoint-url {endpoint}")),
        ])
        .collect();
    run_pipe(&as_refs(&vars)).assert_code(0);
    assert_eq!(
        keys(&moto.url(), "by-name"),
        strings(&["a/b.css", "index.html"])
    );
    let reqs = proxy.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert!(
            r.path.starts_with("/by-name"),
            "path-style request expected: {} {}",
            r.method,
            r.path
        );
        let host = r
            .headers
            .iter()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.as_str());
        assert_eq!(host, Some(format!("localhost:{}", proxy.port()).as_str()));
    }
}
