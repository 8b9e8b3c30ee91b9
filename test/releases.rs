//! Releases (#13): the delete grace period, the state in the bucket, concurrent deploys,
//! rollback and the release list, against moto (and the recording proxy where requests count).

use std::time::Duration;

use crate::support::proxy::{Action, Match, Proxy, Rule};
use crate::support::release::*;
use crate::support::*;

#[test]
fn grace_keeps_replaced_files_until_it_has_passed() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "grace");
    let a = site(&[
        ("index.html", b"<script src=app.a.js>"),
        ("app.a.js", b"a"),
        ("keep.css", b"k"),
    ]);
    let b = site(&[
        ("index.html", b"<script src=app.b.js>"),
        ("app.b.js", b"b"),
        ("keep.css", b"k"),
    ]);
    let c = site(&[
        ("index.html", b"<script src=app.c.js>"),
        ("app.c.js", b"c"),
        ("keep.css", b"k"),
    ]);
    let grace = [("DELETE_GRACE", "1h")];

    deploy(&url, "grace", a.path(), "1", &grace).assert_code(0);
    // B replaces A's bundle: it becomes stale, and is still served. MAX_DELETE counts real
    // deletes only, so 0 lets this run through.
    let run = deploy(
        &url,
        "grace",
        b.path(),
        "2",
        &[("DELETE_GRACE", "1h"), ("MAX_DELETE", "0")],
    );
    run.assert_code(0)
        .assert_contains("0 to delete (3 local files, 3 remote objects); delete grace 1h: 1 became stale, 0 stale deleted, 1 waiting");
    assert_eq!(get(&url, "grace", "site/app.a.js"), b"a");
    assert_eq!(stale_keys(&url, "grace"), vec!["app.a.js"]);

    // Before the grace has passed, C deletes nothing: A's and B's bundles wait.
    let c_vars = with(deploy_vars(&url, "grace", c.path(), "3"), &grace);
    let report = tempfile::tempdir().expect("tmp");
    let report_file = report.path().join("report.json");
    let c_vars = with(
        c_vars,
        &[("REPORT_FILE", report_file.to_str().expect("utf-8"))],
    );
    age_stale(&url, "grace", "app.a.js", 3600 - 120);
    run_pipe(&as_refs(&c_vars))
        .assert_code(0)
        .assert_contains("delete grace 1h: 1 became stale, 0 stale deleted, 2 waiting");
    assert!(keys(&url, "grace").contains(&"site/app.a.js".to_string()));

    // Once A's bundle has been stale for the whole grace, the next deploy deletes it; B's waits.
    age_stale(&url, "grace", "app.a.js", 120);
    let run = run_pipe(&as_refs(&with(
        c_vars.clone(),
        &[("BITBUCKET_BUILD_NUMBER", "4")],
    )));
    run.assert_code(0)
        .assert_contains("1 to delete")
        .assert_contains("delete grace 1h: 0 became stale, 1 stale deleted, 1 waiting")
        .assert_contains("delete: s3://grace/site/app.a.js");
    assert_eq!(
        keys(&url, "grace"),
        vec![
            "site/app.b.js",
            "site/app.c.js",
            "site/index.html",
            "site/keep.css"
        ]
    );
    assert_eq!(stale_keys(&url, "grace"), vec!["app.b.js"]);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).expect("report")).expect("json");
    assert_eq!(r["schema"], 3);
    assert_eq!(r["sync"]["grace"]["stale_deleted"], 1);
    assert_eq!(r["sync"]["grace"]["stale_waiting"], 1);
    assert_eq!(r["sync"]["deleted"], serde_json::json!(["site/app.a.js"]));
    // Only a stale key went: the live objects are release 3's, so no new release (#26 item 6).
    assert!(r["release"]["id"].is_null(), "{}", r["release"]);
    // The state was never deleted, counted or uploaded over, although deletes are on.
    assert!(all_keys(&url, "grace").contains(&STATE.to_string()));
}

#[test]
fn an_empty_build_is_refused_with_a_grace_too_and_a_zero_grace_is_none() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "empty");
    let a = site(&[("index.html", b"1"), ("app.js", b"a")]);
    let none = tempfile::tempdir().expect("tmp");
    deploy(&url, "empty", a.path(), "1", &[]).assert_code(0);
    let run = deploy(&url, "empty", none.path(), "2", &[("DELETE_GRACE", "7d")]);
    run.assert_code(1)
        .assert_contains("LOCAL_PATH has no files to upload");
    // Nothing written: no state (the bucket has no versioning, and the grace never applied).
    assert!(
        !all_keys(&url, "empty")
            .iter()
            .any(|k| k.contains(".s3-deploy-pipe"))
    );
    // DELETE_GRACE=0: no grace, deletes at once.
    let b = site(&[("index.html", b"2")]);
    deploy(&url, "empty", b.path(), "3", &[("DELETE_GRACE", "0")])
        .assert_code(0)
        .assert_contains("delete: s3://empty/site/app.js");
}

#[test]
fn a_file_that_comes_back_is_live_again_and_not_deleted_later() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "back");
    let with_x = site(&[("index.html", b"1"), ("x.js", b"x")]);
    let without_x = site(&[("index.html", b"2")]);
    let grace = [("DELETE_GRACE", "7d")];
    deploy(&url, "back", with_x.path(), "1", &grace).assert_code(0);
    deploy(&url, "back", without_x.path(), "2", &grace).assert_code(0);
    assert_eq!(stale_keys(&url, "back"), vec!["x.js"]);
    age_stale(&url, "back", "x.js", 30 * 86_400);
    // x.js comes back: live again, dropped from the stale keys.
    deploy(&url, "back", with_x.path(), "3", &grace)
        .assert_code(0)
        .assert_contains("0 to delete");
    assert!(stale_keys(&url, "back").is_empty());
    // Gone again: stale anew from now, so the old time no longer counts and nothing is deleted.
    deploy(&url, "back", without_x.path(), "4", &grace)
        .assert_code(0)
        .assert_contains("delete grace 7d: 1 became stale, 0 stale deleted, 1 waiting");
    assert_eq!(get(&url, "back", "site/x.js"), b"x");
}

#[test]
fn dry_run_shows_the_grace_and_writes_nothing() {
    let moto = Moto::start();
    let url = moto.url();
    let proxy = Proxy::start(&url);
    create_bucket(&url, "dry");
    put(&url, "dry", "site/old.js", b"old");
    let dir = site(&[("index.html", b"1")]);
    deploy(
        &proxy.url(),
        "dry",
        dir.path(),
        "1",
        &[("DELETE_GRACE", "2d"), ("DRY_RUN", "true")],
    )
    .assert_code(0)
    .assert_contains("delete grace 2d: 1 became stale, 0 stale deleted, 1 waiting");
    let writes = proxy.requests_where(|r| r.method != "GET" && r.method != "HEAD");
    assert!(writes.is_empty(), "a dry run wrote: {writes:?}");
    assert_eq!(keys(&url, "dry"), vec!["site/old.js"]);
}

#[test]
fn bad_release_variables_are_named_and_nothing_is_sent() {
    let moto = Moto::start();
    let url = moto.url();
    let proxy = Proxy::start(&url);
    create_bucket(&url, "bad");
    let dir = site(&[("index.html", b"1")]);
    let base = deploy_vars(&proxy.url(), "bad", dir.path(), "1");
    let cases: &[(&[(&'static str, &str)], &str)] = &[
        (
            &[("DELETE_GRACE", "7")],
            "✖ DELETE_GRACE: \"7\" has no unit: write a number and a unit, e.g. 90m, 48h or 7d",
        ),
        (
            &[("DELETE_GRACE", "7days")],
            "✖ DELETE_GRACE: \"7days\" has 'a', which is not a unit",
        ),
        (
            &[("DELETE_GRACE", "1h"), ("DELETE_FLAG", "false")],
            "✖ DELETE_GRACE: needs DELETE_FLAG: \"true\"",
        ),
        (
            &[("RELEASE_HISTORY", "many")],
            "✖ RELEASE_HISTORY: \"many\" is not a whole number from 0 to 1000",
        ),
        (
            &[("RELEASES", "show")],
            "✖ RELEASES: \"show\" is not an action: set RELEASES=list",
        ),
        (
            &[("ROLLBACK", "previous"), ("RELEASES", "list")],
            "✖ ROLLBACK: cannot be set together with RELEASES",
        ),
        (
            &[("STATE_PREFIX", "site/")],
            "✖ STATE_PREFIX: \"site/\" is the deployed prefix itself",
        ),
        (
            &[("S3_BUCKET", "bad/site/www"), ("STATE_PREFIX", "site")],
            "✖ STATE_PREFIX: \"site/\" holds the deployed prefix \"site/www/\"",
        ),
    ];
    for (extra, message) in cases {
        let run = run_pipe(&as_refs(&with(base.clone(), extra)));
        run.assert_code(2).assert_contains(message);
    }
    // A mistyped RELEASES or a ROLLBACK without its bucket gets one line, not also one for
    // LOCAL_PATH or "nothing to do".
    let mut no_local = key_vars(&proxy.url());
    no_local.push(("S3_BUCKET", "bad/site".into()));
    let run = run_pipe(&as_refs(&with(no_local, &[("RELEASES", "lst")])));
    run.assert_code(2)
        .assert_contains("✖ 1 pipe variable(s) need fixing");
    let run = run_pipe(&as_refs(&with(
        key_vars(&proxy.url()),
        &[("ROLLBACK", "previous")],
    )));
    run.assert_code(2)
        .assert_contains("✖ S3_BUCKET: is missing: ROLLBACK needs the bucket")
        .assert_contains("✖ 1 pipe variable(s) need fixing");
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
}

#[test]
fn concurrent_deploys_of_one_prefix_keep_both_releases() {
    let moto = Moto::start();
    let url = moto.url();
    let proxy = Proxy::start(&url);
    create_bucket(&url, "race");
    enable_versioning(&url, "race");
    let first = site(&[("index.html", b"0")]);
    deploy(&url, "race", first.path(), "1", &[]).assert_code(0);
    // The first deploy to read the state gets its answer 3 s late: by then the other has read
    // the same state and written its release, so the late one's If-Match no longer holds.
    proxy.set_rules(vec![
        Rule::new(
            Match::any()
                .method("GET")
                .path_contains(".s3-deploy-pipe/state.json"),
            Action::Delay(Duration::from_secs(3)),
        )
        .times(1),
    ]);
    let a = site(&[("index.html", b"a"), ("a.js", b"a")]);
    let b = site(&[("index.html", b"b"), ("b.js", b"b")]);
    let va = deploy_vars(&proxy.url(), "race", a.path(), "2");
    let vb = deploy_vars(&proxy.url(), "race", b.path(), "3");
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| pipe_command(&as_refs(&va), None).output().expect("run a"));
        let hb = s.spawn(|| pipe_command(&as_refs(&vb), None).output().expect("run b"));
        (ha.join().expect("thread"), hb.join().expect("thread"))
    });
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(ra.status.success(), "{}", text(&ra));
    assert!(rb.status.success(), "{}", text(&rb));
    let both = format!("{}{}", text(&ra), text(&rb));
    assert!(
        both.contains("Another deploy wrote the release state of this prefix meanwhile: merging with it (attempt 2 of 5)"),
        "no conflict was met:\n{both}"
    );
    let ids: Vec<String> = state(&url, "race")["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["1", "2", "3"], "{ids:?}");
    // Both conditional forms were used: If-None-Match for the first state, If-Match after.
    let puts = proxy.requests_where(|r| r.method == "PUT" && r.path.contains("state.json"));
    assert!(puts.len() >= 3, "{puts:?}");
    assert!(puts.iter().all(|r| r.header("if-match").is_some()));
}

#[test]
fn rollback_restores_the_previous_release_byte_for_byte_and_header_for_header() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "live");
    create_bucket(&url, "only-a");
    enable_versioning(&url, "live");
    let dist = create_distribution(&url);
    let a = site(&[
        ("index.html", b"<p>A</p>"),
        ("about/index.html", b"<p>about A</p>"),
        ("app.a.js", b"console.log('a')"),
        ("same.css", b"body{}"),
        ("changed.json", b"{\"v\":1}"),
    ]);
    let b = site(&[
        ("index.html", b"<p>B</p>"),
        ("about/index.html", b"<p>about A</p>"),
        ("app.b.js", b"console.log('b')"),
        ("same.css", b"body{}"),
        ("changed.json", b"{\"v\":2}"),
        ("new/page.html", b"<p>new</p>"),
    ]);
    let rules = "- pattern: '*.js'\n  cache_control: max-age=31536000, immutable\n- pattern: '*.html'\n  cache_control: no-cache\n";
    let common = [("RULES", rules), ("ACL", "public-read")];
    deploy(&url, "only-a", a.path(), "1", &common).assert_code(0);
    deploy(&url, "live", a.path(), "1", &common).assert_code(0);
    deploy(&url, "live", b.path(), "2", &common).assert_code(0);
    let b_snapshot = snapshot(&url, "live");

    let proxy = Proxy::start(&url);
    let mut rollback = key_vars(&proxy.url());
    rollback.extend([
        ("S3_BUCKET", "live/site".to_string()),
        ("ROLLBACK", "previous".to_string()),
        ("DISTRIBUTION_ID", dist.clone()),
        ("BITBUCKET_BUILD_NUMBER", "3".to_string()),
    ]);
    // The deploy's ACL and rules: a restore sets them again only when the step asks for them.
    rollback.extend(common.iter().map(|(k, v)| (*k, v.to_string())));
    let run = run_pipe(&as_refs(&rollback));
    run.assert_code(0)
        .assert_contains(
            "Rolling back s3://live/site/ from release 2 to release 1 (commit commit1abcde)",
        )
        .assert_contains("Rollback plan: 3 to restore, 2 unchanged, 2 to delete")
        .assert_contains(
            "✔ Rolled back s3://live/site/ to release 1: 3 restored, 2 unchanged, 2 deleted",
        )
        .assert_contains("Release 3 recorded");
    assert_eq!(snapshot(&url, "live"), snapshot(&url, "only-a"));
    // Server-side: copies from versions, nothing uploaded from files; HTML last.
    let copies: Vec<String> = proxy
        .requests_where(|r| r.is_copy_object())
        .iter()
        .map(|r| r.s3_key().unwrap_or_default())
        .collect();
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert!(
        copies[..2].iter().all(|k| !k.ends_with(".html")),
        "{copies:?}"
    );
    assert!(
        copies[2..].iter().all(|k| k.ends_with(".html")),
        "{copies:?}"
    );
    assert!(
        proxy
            .requests_where(|r| r.is_put_object() && !r.path.contains(".s3-deploy-pipe"))
            .is_empty()
    );
    // The invalidation lists exactly what changed.
    let invs = invalidations(&url, &dist);
    assert_eq!(invs.len(), 1, "{invs:?}");
    let mut paths = invs[0].paths.clone();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "/",
            "/app.a.js",
            "/app.b.js",
            "/changed.json",
            "/index.html",
            "/new/page.html"
        ]
    );

    // Rolling forward is another rollback: to release 2 by its id.
    let forward = with(
        rollback.clone(),
        &[("ROLLBACK", "2"), ("BITBUCKET_BUILD_NUMBER", "4")],
    );
    run_pipe(&as_refs(&forward))
        .assert_code(0)
        .assert_contains("from release 3 to release 2");
    assert_eq!(snapshot(&url, "live"), b_snapshot);

    // The list shows all four, the last one live.
    let list = with(
        key_vars(&url),
        &[("S3_BUCKET", "live/site"), ("RELEASES", "list")],
    );
    let run = run_pipe(&as_refs(&list));
    run.assert_code(0)
        .assert_contains("✔ 4 release(s) recorded for s3://live/site/ (* is live)");
    let rows: Vec<&str> = run.stdout.lines().filter(|l| l.contains(" UTC ")).collect();
    assert_eq!(rows.len(), 4, "{}", run.stdout);
    assert!(
        rows[0].starts_with("*  4 ") && rows[0].contains("rollback to 2"),
        "{rows:?}"
    );
    assert!(
        rows[3].starts_with("   1 ") && rows[3].contains("commit1abcde"),
        "{rows:?}"
    );
}

#[test]
fn rollback_without_versioning_refuses_and_writes_nothing() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "plain");
    let a = site(&[("index.html", b"a")]);
    let b = site(&[("index.html", b"b")]);
    // RELEASE_HISTORY set: releases are recorded on a bucket without versioning too.
    let history = [("RELEASE_HISTORY", "20")];
    deploy(&url, "plain", a.path(), "1", &history)
        .assert_code(0)
        .assert_contains("it cannot be rolled back to: the bucket has no versioning");
    deploy(&url, "plain", b.path(), "2", &history).assert_code(0);
    let proxy = Proxy::start(&url);
    let vars = with(
        key_vars(&proxy.url()),
        &[
            ("S3_BUCKET", "plain/site"),
            ("ROLLBACK", "previous"),
            ("LOCAL_PATH", "/nonexistent"),
        ],
    );
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(1)
        .assert_contains("✖ rollback needs bucket versioning, and s3://plain has none: nothing was changed")
        .assert_contains("aws s3api put-bucket-versioning --bucket plain --versioning-configuration Status=Enabled")
        .assert_contains("NoncurrentVersionExpiration");
    let writes = proxy.requests_where(|r| r.method != "GET" && r.method != "HEAD");
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(get(&url, "plain", "site/index.html"), b"b");

    // Versioning enabled later: the releases recorded before it still cannot be restored.
    enable_versioning(&url, "plain");
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(1).assert_contains(
        "✖ release 1 was recorded while the bucket had no versioning (or it could not be read): it cannot be restored; nothing was changed",
    );
    let run = run_pipe(&as_refs(&with(vars.clone(), &[("ROLLBACK", "17")])));
    run.assert_code(1)
        .assert_contains("✖ no release \"17\" is recorded (the newest: 2, 1)");
    let writes = proxy.requests_where(|r| r.method != "GET" && r.method != "HEAD");
    assert!(writes.is_empty(), "{writes:?}");
}

#[test]
fn a_rollback_with_a_grace_keeps_the_newer_build_until_it_has_passed() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "rbgrace");
    enable_versioning(&url, "rbgrace");
    let a = site(&[
        ("index.html", b"<script src=app.1.js>"),
        ("app.1.js", b"one"),
    ]);
    let b = site(&[
        ("index.html", b"<script src=app.2.js>"),
        ("app.2.js", b"two"),
    ]);
    let grace = [("DELETE_GRACE", "7d")];
    deploy(&url, "rbgrace", a.path(), "1", &grace).assert_code(0);
    deploy(&url, "rbgrace", b.path(), "2", &grace).assert_code(0);
    assert_eq!(stale_keys(&url, "rbgrace"), vec!["app.1.js"]);

    // Back to release 1 through the grace: app.1.js (stale, still there) is live again and
    // unchanged; app.2.js, which release 1 did not have, becomes stale instead of going.
    let rollback = with(
        key_vars(&url),
        &[
            ("S3_BUCKET", "rbgrace/site"),
            ("ROLLBACK", "previous"),
            ("DELETE_GRACE", "7d"),
            ("BITBUCKET_BUILD_NUMBER", "3"),
        ],
    );
    run_pipe(&as_refs(&rollback))
        .assert_code(0)
        .assert_contains("Rollback plan: 1 to restore, 1 unchanged, 0 to delete")
        .assert_contains("delete grace 7d: 1 became stale, 0 stale deleted, 1 waiting");
    assert_eq!(stale_keys(&url, "rbgrace"), vec!["app.2.js"]);
    assert_eq!(
        get(&url, "rbgrace", "site/index.html"),
        b"<script src=app.1.js>"
    );
    assert_eq!(get(&url, "rbgrace", "site/app.1.js"), b"one");
    assert_eq!(get(&url, "rbgrace", "site/app.2.js"), b"two");

    // Once the grace has passed, the next deploy of the restored build deletes it.
    age_stale(&url, "rbgrace", "app.2.js", 8 * 86_400);
    deploy(&url, "rbgrace", a.path(), "4", &grace)
        .assert_code(0)
        .assert_contains("delete grace 7d: 0 became stale, 1 stale deleted, 0 waiting");
    assert_eq!(
        keys(&url, "rbgrace"),
        vec!["site/app.1.js", "site/index.html"]
    );
    assert!(stale_keys(&url, "rbgrace").is_empty());
}

#[test]
fn release_history_keeps_the_last_n_and_deletes_older_manifests() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "hist");
    for n in 1..=4 {
        let dir = site(&[("index.html", format!("{n}").as_bytes())]);
        deploy(
            &url,
            "hist",
            dir.path(),
            &n.to_string(),
            &[("RELEASE_HISTORY", "2")],
        )
        .assert_code(0);
    }
    let s = state(&url, "hist");
    let ids: Vec<&str> = s["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["3", "4"]);
    let manifests: Vec<String> = all_keys(&url, "hist")
        .into_iter()
        .filter(|k| k.contains("/releases/"))
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    // A re-run of the same build gets its own release id.
    let dir = site(&[("index.html", b"again")]);
    deploy(&url, "hist", dir.path(), "4", &[("RELEASE_HISTORY", "2")])
        .assert_code(0)
        .assert_contains("Release 4.2 recorded");
    // A local file in the reserved folder is never uploaded over the state.
    let dir = site(&[("index.html", b"x"), (".s3-deploy-pipe/state.json", b"{}")]);
    deploy(&url, "hist", dir.path(), "5", &[("RELEASE_HISTORY", "2")])
        .assert_code(0)
        .assert_contains("its key is reserved for the pipe's release state");
    assert_eq!(state(&url, "hist")["releases"][1]["id"], "5");
}

#[test]
fn a_deploy_takes_version_ids_from_the_live_manifest_not_from_a_listing_of_versions() {
    let moto = Moto::start();
    let url = moto.url();
    let proxy = Proxy::start(&url);
    create_bucket(&url, "ids");
    enable_versioning(&url, "ids");
    let a = site(&[("index.html", b"a"), ("same.css", b"s")]);
    let b = site(&[("index.html", b"b"), ("same.css", b"s")]);
    deploy(&proxy.url(), "ids", a.path(), "1", &[]).assert_code(0);
    deploy(&proxy.url(), "ids", b.path(), "2", &[])
        .assert_code(0)
        .assert_contains("roll back to it with ROLLBACK=2");
    let version_listings =
        proxy.requests_where(|r| r.method == "GET" && r.has_query_param("versions"));
    assert!(version_listings.is_empty(), "{version_listings:?}");
    // same.css was not written by deploy 2: its VersionId came from release 1's manifest, and
    // a rollback with it restores exactly release 1.
    let mut vars = key_vars(&url);
    vars.extend([
        ("S3_BUCKET", "ids/site".to_string()),
        ("ROLLBACK", "1".to_string()),
    ]);
    run_pipe(&as_refs(&vars))
        .assert_code(0)
        .assert_contains("1 restored, 1 unchanged, 0 deleted");
    assert_eq!(get(&url, "ids", "site/index.html"), b"a");
}

/// Every write of the release state carries the Content-MD5 of its body, as every upload does:
/// the store verifies it, and buckets with S3 Object Lock refuse a PutObject without one (#26).
#[test]
fn state_writes_carry_the_content_md5_of_their_body() {
    use base64::Engine;
    use md5::{Digest, Md5};
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "md5");
    enable_versioning(&url, "md5");
    let proxy = Proxy::start(&url);
    let a = site(&[("index.html", b"A")]);
    deploy(&proxy.url(), "md5", a.path(), "1", &[]).assert_code(0);
    // (`is_put_object` leaves the state out: the site's PUTs are what most tests count.)
    let state_puts = proxy.requests_where(|r| r.is_state() && r.method == "PUT");
    assert_eq!(state_puts.len(), 2, "a manifest and state.json");
    for r in state_puts {
        assert!(r.body_len <= crate::support::proxy::RECORDED_BODY_LIMIT);
        let want = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&r.body));
        assert_eq!(r.header("content-md5"), Some(want.as_str()), "{}", r.path);
    }
}

/// A deploy that only deletes stale keys (the grace has passed) leaves the live objects as
/// they were: it updates the state, records no release, and `ROLLBACK=previous` still means the
/// build before. A rollback to a release with the live content says so and names one that
/// differs (#26 item 6).
#[test]
fn deleting_stale_keys_records_no_release_and_previous_stays_the_build_before() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "prev");
    enable_versioning(&url, "prev");
    let a = site(&[("index.html", b"A"), ("app.a.js", b"a")]);
    let b = site(&[("index.html", b"B"), ("app.b.js", b"b")]);
    let grace = [("DELETE_GRACE", "1h")];
    deploy(&url, "prev", a.path(), "1", &grace).assert_code(0);
    deploy(&url, "prev", b.path(), "2", &grace).assert_code(0);
    assert_eq!(stale_keys(&url, "prev"), vec!["app.a.js"]);
    age_stale(&url, "prev", "app.a.js", 7200);
    deploy(&url, "prev", b.path(), "3", &grace)
        .assert_code(0)
        .assert_contains("The live objects are still those of release 2: no new release recorded");
    assert!(
        stale_keys(&url, "prev").is_empty(),
        "the stale key was deleted"
    );
    let ids: Vec<String> = state(&url, "prev")["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, vec!["1", "2"]);

    let mut v = deploy_vars(&url, "prev", b.path(), "4");
    v.retain(|(k, _)| *k != "LOCAL_PATH");
    run_pipe(&as_refs(&with(v.clone(), &[("ROLLBACK", "2")])))
        .assert_code(1)
        .assert_contains("release 2 has the live content already: nothing to roll back")
        .assert_contains("The newest release with other content is 1: ROLLBACK=1");
    assert_eq!(get(&url, "prev", "site/index.html"), b"B");
    run_pipe(&as_refs(&with(v, &[("ROLLBACK", "previous")])))
        .assert_code(0)
        .assert_contains("to release 1");
    assert_eq!(get(&url, "prev", "site/index.html"), b"A");
    assert_eq!(get(&url, "prev", "site/app.a.js"), b"a");
}
