//! Right on every bucket (#26): SSE-KMS buckets whose ETags are not MD5s, where the release
//! state is kept and who can read it.

use std::path::Path;

use crate::support::proxy::{Action, Match, Proxy, Rule};
use crate::support::release::{release_ids, two_first_deploys_at_once};
use crate::support::*;

/// A deploy of `dir` to `bucket/site` through `endpoint`, deletes on, with `extra` on top.
fn deploy(endpoint: &str, bucket: &str, dir: &Path, extra: &[(&'static str, &str)]) -> Run {
    let mut v = key_vars(endpoint);
    v.push(("S3_BUCKET", format!("{bucket}/site")));
    v.push(("LOCAL_PATH", dir.display().to_string()));
    v.push(("DELETE_FLAG", "true".into()));
    for (k, val) in extra {
        v.retain(|(name, _)| name != k);
        v.push((k, val.to_string()));
    }
    run_pipe(&as_refs(&v))
}

/// The site's uploads the proxy saw (single PUTs and parts; the release state left out).
fn uploads(proxy: &Proxy) -> Vec<String> {
    proxy
        .requests_where(|r| r.is_put_object() || r.is_upload_part())
        .iter()
        .map(|r| r.decoded_path())
        .collect()
}

/// Through a proxy that answers as S3 does for SSE-KMS objects (opaque ETags of the MD5 form,
/// `x-amz-server-side-encryption: aws:kms`), a CI redeploy of unchanged files uploads nothing
/// and one changed file is one upload (#26 item 1). The first deploy to a bucket without the
/// manifest's content ETags uploads the same-size files once, and says why. Today's code
/// uploads every file on every deploy there.
#[test]
fn an_sse_kms_bucket_redeploys_only_what_changed() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "kms");
    let proxy = Proxy::start(&url);
    proxy.set_rules(vec![Rule::new(Match::any(), Action::SseKms)]);
    let mut files: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| (format!("assets/f{i:02}.css"), noise(100 + i * 37, i as u64)))
        .collect();
    files.push(("index.html".into(), b"<h1>v1</h1>".to_vec()));
    // Above the multipart threshold (8 MiB): a multipart ETag, opaque too.
    files.push(("big.bin".into(), noise(9 * 1024 * 1024, 99)));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let dir = site(&refs);

    // A first deploy that keeps no manifest (as another tool would leave the bucket).
    deploy(&proxy.url(), "kms", dir.path(), &[("RELEASE_HISTORY", "0")]).assert_code(0);
    let first = uploads(&proxy);
    assert!(
        first.len() > files.len(),
        "every file, big.bin in parts: {first:?}"
    );
    let listed = list(&url, "kms");
    assert_eq!(listed.len(), files.len(), "no release state: {listed:?}");

    // The next deploy sees same-size objects whose ETags it cannot check: it uploads them,
    // says why, and records their content ETags (the bucket has no versioning: the state is
    // kept because its ETags are not MD5s).
    touch_all(dir.path(), 60);
    proxy.clear_requests();
    deploy(&proxy.url(), "kms", dir.path(), &[])
        .assert_code(0)
        .assert_contains(&format!(
            "{} file(s) with an object of the same size were uploaded because the bucket's ETags are not MD5s",
            files.len()
        ));
    assert_eq!(uploads(&proxy).len(), first.len());

    // A CI redeploy (every mtime new) of unchanged files: nothing uploaded.
    touch_all(dir.path(), 120);
    proxy.clear_requests();
    let run = deploy(&proxy.url(), "kms", dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(uploads(&proxy), Vec::<String>::new(), "{}", run.all());
    assert!(
        !run.all().contains("ETags are not MD5s"),
        "nothing to explain: {}",
        run.all()
    );

    // One changed file of the same size: one upload.
    write_files(
        dir.path(),
        &[("assets/f03.css", &noise(100 + 3 * 37, 1003))],
    );
    touch_all(dir.path(), 180);
    proxy.clear_requests();
    let run = deploy(&proxy.url(), "kms", dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(
        uploads(&proxy),
        vec!["/kms/site/assets/f03.css".to_string()],
        "{}",
        run.all()
    );
    assert_eq!(
        get(&url, "kms", "site/assets/f03.css"),
        noise(100 + 3 * 37, 1003)
    );

    // And the redeploy after that change: nothing again (the new manifest carries the
    // unchanged objects' content ETags over, and the new one's).
    touch_all(dir.path(), 240);
    proxy.clear_requests();
    deploy(&proxy.url(), "kms", dir.path(), &[]).assert_code(0);
    assert_eq!(uploads(&proxy), Vec::<String>::new());
}

/// By default the release state is written only where it serves something (#26 item 5): not
/// on a bucket without versioning, `DELETE_GRACE` or SSE-KMS, where the bucket then holds
/// exactly the site, as `aws s3 sync` leaves it. Where it is written, it is `no-store` JSON, and
/// an unsigned request tells whether anyone can read it.
#[test]
fn the_release_state_is_kept_only_where_it_serves_and_its_readers_are_checked() {
    let moto = Moto::start();
    let url = moto.url();
    let proxy = Proxy::start(&url);
    let dir = site(&[("index.html", b"1"), ("app.js", b"a")]);

    // No versioning: the site only, and nothing about releases in the log.
    create_bucket(&url, "plain");
    let run = deploy(&proxy.url(), "plain", dir.path(), &[]);
    run.assert_code(0);
    assert_eq!(keys(&url, "plain"), ["site/app.js", "site/index.html"]);
    assert!(!run.all().contains("Release"), "{}", run.all());
    assert!(
        proxy
            .requests_where(|r| r.is_state() && r.method == "PUT")
            .is_empty()
    );
    let mut list = key_vars(&url);
    list.extend([
        ("S3_BUCKET", "plain/site".to_string()),
        ("RELEASES", "list".to_string()),
    ]);
    run_pipe(&as_refs(&list))
        .assert_code(0)
        .assert_contains("No release is recorded for s3://plain/site/")
        .assert_contains("Deploys record releases on a bucket with versioning, with DELETE_GRACE or SSE-KMS objects, or with RELEASE_HISTORY set");

    // A state an earlier version wrote there (RELEASE_HISTORY set then) is left as it was,
    // and the log says how to remove it or keep it.
    deploy(
        &proxy.url(),
        "plain",
        dir.path(),
        &[("RELEASE_HISTORY", "5")],
    )
    .assert_code(0);
    let state_before = get(&url, "plain", "site/.s3-deploy-pipe/state.json");
    let changed = site(&[("index.html", b"2"), ("app.js", b"a")]);
    proxy.clear_requests();
    deploy(&proxy.url(), "plain", changed.path(), &[])
        .assert_code(0)
        .assert_contains("The release state s3://plain/site/.s3-deploy-pipe/state.json is no longer updated")
        .assert_contains("Set RELEASE_HISTORY to keep recording releases anyway, or delete the folder s3://plain/site/.s3-deploy-pipe/");
    assert!(
        proxy
            .requests_where(|r| r.is_state() && r.method == "PUT")
            .is_empty()
    );
    assert_eq!(
        get(&url, "plain", "site/.s3-deploy-pipe/state.json"),
        state_before
    );

    // Versioning: the state is kept, as no-store JSON. The bucket is private: the unsigned
    // HEAD is refused, and nothing is said.
    create_bucket(&url, "versioned");
    enable_versioning(&url, "versioned");
    proxy.clear_requests();
    let run = deploy(&proxy.url(), "versioned", dir.path(), &[]);
    run.assert_code(0).assert_contains("Release");
    assert!(!run.all().contains("Anyone can read"), "{}", run.all());
    let h = headers_of(&url, "versioned", "site/.s3-deploy-pipe/state.json");
    assert_eq!(
        h.get("cache-control").map(String::as_str),
        Some("no-store"),
        "{h:?}"
    );
    assert_eq!(
        h.get("content-type").map(String::as_str),
        Some("application/json"),
        "{h:?}"
    );
    // (A one-byte GET, not a HEAD: moto checks a HEAD against "s3:HeadObject", where AWS
    // documents s3:GetObject for both.)
    let checks = proxy.requests_where(|r| r.is_state() && r.header("authorization").is_none());
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].header("range"), Some("bytes=0-0"));
    assert_eq!(checks[0].status, 403);

    // A public site (a bucket policy lets anyone read every key): the state is readable too,
    // and the log says how to close it.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::versioned/*"}]}"#;
    block_on(
        s3(&url)
            .put_bucket_policy()
            .bucket("versioned")
            .policy(policy)
            .send(),
    )
    .expect("bucket policy");
    let again = site(&[("index.html", b"3"), ("app.js", b"a")]);
    deploy(&proxy.url(), "versioned", again.path(), &[])
        .assert_code(0)
        .assert_contains(
            "Anyone can read the release state s3://versioned/site/.s3-deploy-pipe/state.json",
        )
        .assert_contains("Deny s3:GetObject on arn:aws:s3:::versioned/site/.s3-deploy-pipe/*");
}

/// A Ceph-RGW-16-like store: 412 to every `If-Match` of the state (even with the current ETag,
/// as RGW 16 answers on a versioned bucket) and `If-None-Match: *` ignored. Deploys A then B
/// are both recorded (exit 0), `RELEASES=list` marks B live and `ROLLBACK=previous` restores A
/// (#26 item 4). Today's code ends deploy B with exit 1: "other deploys of this prefix wrote
/// the release state 5 times".
#[test]
fn a_store_that_refuses_if_match_records_every_release_and_says_what_is_left() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "rgw");
    enable_versioning(&url, "rgw");
    let proxy = Proxy::start(&url);
    proxy.ignore_request_headers(&["if-none-match"]);
    proxy.set_rules(vec![Rule::new(
        Match::any()
            .method("PUT")
            .path_contains("state.json")
            .header_contains("if-match", ""),
        Action::s3_error(
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        ),
    )]);
    let a = site(&[("index.html", b"A"), ("a.js", b"a")]);
    let b = site(&[("index.html", b"B"), ("b.js", b"b")]);
    deploy(
        &proxy.url(),
        "rgw",
        a.path(),
        &[("BITBUCKET_BUILD_NUMBER", "1")],
    )
    .assert_code(0)
    .assert_contains("Release 1 recorded");
    deploy(&proxy.url(), "rgw", b.path(), &[("BITBUCKET_BUILD_NUMBER", "2")])
        .assert_code(0)
        .assert_contains("The store refuses If-Match with the current ETag of s3://rgw/site/.s3-deploy-pipe/state.json")
        .assert_contains("a deploy of this prefix that writes at the same moment as this one can still replace this release record")
        .assert_contains("Release 2 recorded");
    // Tried in turn: the ETag as S3 gives it (quoted), unquoted, then no condition.
    let forms: Vec<Option<String>> = proxy
        .requests_where(|r| r.method == "PUT" && r.path.ends_with("state.json"))
        .iter()
        .map(|r| r.header("if-match").map(str::to_string))
        .collect();
    assert_eq!(forms.len(), 4, "{forms:?}");
    assert!(
        forms[1].as_deref().is_some_and(|e| e.starts_with('"')),
        "{forms:?}"
    );
    assert!(
        forms[2].as_deref().is_some_and(|e| !e.contains('"')),
        "{forms:?}"
    );
    assert_eq!(forms[3], None);

    let mut vars = key_vars(&proxy.url());
    vars.push(("S3_BUCKET", "rgw/site".to_string()));
    let list = run_pipe(&as_refs(
        &[vars.clone(), vec![("RELEASES", "list".to_string())]].concat(),
    ));
    list.assert_code(0);
    let rows: Vec<&str> = list
        .stdout
        .lines()
        .filter(|l| l.contains(" UTC "))
        .collect();
    assert_eq!(rows.len(), 2, "{}", list.stdout);
    assert!(rows[0].starts_with("*  2 "), "{rows:?}");
    run_pipe(&as_refs(
        &[vars, vec![("ROLLBACK", "previous".to_string())]].concat(),
    ))
    .assert_code(0);
    assert_eq!(get(&url, "rgw", "site/index.html"), b"A");
}

/// Two first deploys at once on a store that ignores `If-None-Match: *` (Ceph RGW 16): both
/// write `state.json` unconditionally, the second over the first. The first one's read-back
/// shows the other's state: it merges and writes again, and both releases are recorded.
/// Today's code prints "Release N recorded" for both while only one is in the state.
#[test]
fn two_first_deploys_on_a_store_that_ignores_if_none_match_keep_both_releases() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "race");
    enable_versioning(&url, "race");
    let proxy = Proxy::start(&url);
    proxy.ignore_request_headers(&["if-none-match"]);
    let (ra, rb) = two_first_deploys_at_once(&proxy, "race");
    ra.assert_code(0);
    rb.assert_code(0);
    let both = format!("{}{}", ra.all(), rb.all());
    assert!(
        both.contains("The release state read back is not the one just written"),
        "{both}"
    );
    let mut ids = release_ids(&url, "race");
    ids.sort();
    assert_eq!(ids, ["1", "2"]);
}

/// A deploy whose release could not be recorded still changed the live objects: the next
/// deploy that writes nothing records them as a new release, rather than saying "Nothing
/// changed since" the release before (which RGW's refused conditions made visible, #26 item 4),
/// and the failure is the run's last line, after the sync's summary.
#[test]
fn objects_written_by_an_unrecorded_deploy_make_the_next_no_op_a_new_release() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "unrec");
    enable_versioning(&url, "unrec");
    let proxy = Proxy::start(&url);
    let a = site(&[("index.html", b"A")]);
    let b = site(&[("index.html", b"B")]);
    deploy(
        &proxy.url(),
        "unrec",
        a.path(),
        &[("BITBUCKET_BUILD_NUMBER", "1")],
    )
    .assert_code(0);
    // Past the clock skew the pipe allows between the store and the runner.
    std::thread::sleep(std::time::Duration::from_secs(3));
    proxy.set_rules(vec![Rule::new(
        Match::any().method("PUT").path_contains("state.json"),
        Action::s3_error(403, "AccessDenied", "Access Denied"),
    )]);
    let run = deploy(
        &proxy.url(),
        "unrec",
        b.path(),
        &[("BITBUCKET_BUILD_NUMBER", "2")],
    );
    run.assert_code(1);
    let last = run.stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("✖ the deploy succeeded but its release was not recorded"),
        "{}",
        run.all()
    );
    proxy.clear_rules();
    touch_all(b.path(), 60);
    let run = deploy(
        &proxy.url(),
        "unrec",
        b.path(),
        &[("BITBUCKET_BUILD_NUMBER", "3")],
    );
    run.assert_code(0).assert_contains("Release 3 recorded");
    assert!(
        !run.all().contains("Nothing changed since release 1"),
        "{}",
        run.all()
    );
    let mut vars = key_vars(&url);
    vars.extend([
        ("S3_BUCKET", "unrec/site".to_string()),
        ("ROLLBACK", "previous".to_string()),
    ]);
    run_pipe(&as_refs(&vars)).assert_code(0);
    assert_eq!(get(&url, "unrec", "site/index.html"), b"A");
}
