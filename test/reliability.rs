//! Reliability and security: injected faults, interruption, bad input, secrets, hostile trees.
//! The fault-injecting proxy sits between the pipe and moto and records every request.

use std::time::{Duration, Instant};

use crate::support::proxy::{Action, Match, Proxy, Rule};
use crate::support::*;

#[test]
fn transient_faults_are_retried_and_the_bucket_equals_the_source() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "flaky");
    for i in 0..20 {
        put(&moto.url(), "flaky", &format!("stale/{i}.txt"), b"old");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mut expected = Vec::new();
    for i in 0..500 {
        let rel = format!("f/{:03}/{i}.txt", i % 37);
        let body = format!("file {i} {}", "x".repeat(i % 50)).into_bytes();
        write_files(dir.path(), &[(rel.as_str(), body.as_slice())]);
        expected.push((rel, body.len() as i64, local_md5(&body)));
    }
    let big = deterministic_bytes(9 * 1024 * 1024 + 123, 7);
    write_files(dir.path(), &[("big.bin", big.as_slice())]);
    proxy.set_rules(vec![
        Rule::new(Match::any(), Action::s3_slow_down()).probability(0.1),
        Rule::new(Match::any(), Action::Drop).probability(0.11),
    ]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "flaky".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("DELETE_FLAG", "true".to_string()),
    ]);
    run_pipe(&as_refs(&vars)).assert_code(0);
    let fired = proxy.fired();
    assert!(
        fired.iter().sum::<usize>() > 50,
        "faults were injected: {fired:?}"
    );

    let listed = list(&moto.url(), "flaky");
    let by_key: std::collections::BTreeMap<_, _> =
        listed.iter().map(|o| (o.key.clone(), o)).collect();
    assert_eq!(listed.len(), 501, "500 files + big.bin, stale keys deleted");
    for (key, size, etag) in &expected {
        let o = by_key.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!((o.size, &o.etag), (*size, etag), "{key}");
    }
    let b = by_key.get("big.bin").expect("big.bin");
    assert_eq!(b.size, big.len() as i64);
    assert!(b.etag.ends_with("-2\""), "{}", b.etag);
    assert_eq!(get(&moto.url(), "flaky", "big.bin"), big);
    assert_eq!(open_uploads(&moto.url(), "flaky"), 0);
}

#[test]
fn one_key_failing_persistently_fails_the_run_without_any_delete() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "bkt");
    put(&moto.url(), "bkt", "stale.js", b"old");
    let big = deterministic_bytes(10 * 1024 * 1024, 3);
    let dir = site(&[
        ("a.css", b"a"),
        ("bad.css", b"bad"),
        ("z.js", b"z"),
        ("index.html", b"home"),
    ]);
    write_files(dir.path(), &[("big.bin", big.as_slice())]);
    proxy.set_rules(vec![Rule::new(
        Match::any().method("PUT").path_contains("bad.css"),
        Action::s3_error(
            403,
            "AccessDenied",
            "Access Denied by bucket policy for this key",
        ),
    )]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "bkt".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("DELETE_FLAG", "true".to_string()),
    ]);
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(1)
        .assert_contains("upload failed:")
        .assert_contains("bad.css")
        .assert_contains("s3:PutObject on arn:aws:s3:::bkt/bad.css")
        .assert_contains("delete(s) not done");
    let reqs = proxy.requests();
    assert_eq!(
        reqs.iter()
            .filter(|r| r.is_delete_objects() || r.is_delete_object())
            .count(),
        0
    );
    let keys = keys(&moto.url(), "bkt");
    assert_eq!(
        keys,
        vec!["a.css", "big.bin", "stale.js", "z.js"],
        "every other asset landed; HTML held back; nothing deleted"
    );
    assert_eq!(open_uploads(&moto.url(), "bkt"), 0);
}

#[test]
fn a_failed_complete_multipart_upload_is_aborted() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "mpu");
    let big = deterministic_bytes(17 * 1024 * 1024, 9);
    let dir = site(&[]);
    write_files(dir.path(), &[("big.bin", big.as_slice())]);
    proxy.set_rules(vec![Rule::new(
        Match::any().method("POST").query_contains("uploadId="),
        Action::s3_error(
            400,
            "InvalidPart",
            "One or more of the specified parts could not be found.",
        ),
    )]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "mpu".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
    ]);
    run_pipe(&as_refs(&vars))
        .assert_code(1)
        .assert_contains("InvalidPart")
        .assert_contains("big.bin");
    let reqs = proxy.requests();
    assert_eq!(reqs.iter().filter(|r| r.is_upload_part()).count(), 3);
    assert_eq!(
        reqs.iter()
            .filter(|r| r.is_abort_multipart_upload())
            .count(),
        1
    );
    assert_eq!(open_uploads(&moto.url(), "mpu"), 0);
    assert!(keys(&moto.url(), "mpu").is_empty());
}

fn interrupted_mid_sync(signal: &str) {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "sig");
    put(&moto.url(), "sig", "stale.js", b"old");
    let big = deterministic_bytes(24 * 1024 * 1024, 1);
    let dir = tempfile::tempdir().expect("tmp");
    write_files(dir.path(), &[("a-big.bin", big.as_slice())]);
    for i in 0..300 {
        write_files(
            dir.path(),
            &[(format!("f{i:03}.txt").as_str(), b"x".as_slice())],
        );
    }
    // Every upload takes a while, so the signal lands mid-sync.
    proxy.set_rules(vec![Rule::new(
        Match::any().method("PUT"),
        Action::Delay(Duration::from_millis(1500)),
    )]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "sig".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("DELETE_FLAG", "true".to_string()),
        ("MAX_CONCURRENCY", "4".to_string()),
    ]);
    let mut child = pipe_command(&as_refs(&vars), None)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while !proxy.requests().iter().any(|r| r.is_upload_part()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no part upload started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // A watchdog, not a timing threshold: the contract is seconds (test/network.rs covers the
    // bound when every request hangs); a run still alive a minute later has hung.
    let sent = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if sent.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "still running a minute after SIG{signal}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("wait");
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("{signal} received: stopping")),
        "{all}"
    );
    assert!(all.contains("Interrupted"), "{all}");
    assert!(
        all.contains("uploaded,"),
        "a summary of what was done: {all}"
    );
    let reqs = proxy.requests();
    assert_eq!(
        reqs.iter().filter(|r| r.is_delete_objects()).count(),
        0,
        "no deletes"
    );
    assert!(
        reqs.iter().filter(|r| r.is_put_object()).count() < 300,
        "stopped starting new work"
    );
    assert_eq!(
        open_uploads(&moto.url(), "sig"),
        0,
        "multipart upload aborted"
    );
    assert!(keys(&moto.url(), "sig").contains(&"stale.js".to_string()));
}

#[test]
fn sigterm_mid_sync_stops_cleanly() {
    interrupted_mid_sync("TERM");
}

#[test]
fn sigint_mid_sync_stops_cleanly() {
    interrupted_mid_sync("INT");
}

#[test]
fn every_malformed_variable_is_named_with_exit_2_and_no_request() {
    let proxy = Proxy::start("http://127.0.0.1:9");
    let dir = site(&[("a.txt", b"a")]);
    let local = dir.path().display().to_string();
    let file = dir.path().join("a.txt").display().to_string();
    let role = "arn:aws:iam::123456789012:role/r";
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "EXTRA_ARGS",
            vec![("EXTRA_ARGS", "--delete --no-such-flag")],
        ),
        ("EXTRA_ARGS", vec![("EXTRA_ARGS", "--exclude")]),
        ("EXTRA_ARGS", vec![("EXTRA_ARGS", "--exclude 'unclosed")]),
        ("MAX_CONCURRENCY", vec![("MAX_CONCURRENCY", "lots")]),
        ("MAX_CONCURRENCY", vec![("MAX_CONCURRENCY", "0")]),
        ("DISTRIBUTION_ID", vec![("DISTRIBUTION_ID", "e-123")]),
        (
            "PATHS",
            vec![("DISTRIBUTION_ID", "E1"), ("PATHS", "index.html")],
        ),
        ("PATHS", vec![("DISTRIBUTION_ID", "E1"), ("PATHS", "/a*b")]),
        ("EXPIRES", vec![("EXPIRES", "tomorrow-ish")]),
        ("LOCAL_PATH", vec![("LOCAL_PATH", file.as_str())]),
        ("LOCAL_PATH", vec![("LOCAL_PATH", "/no/such/folder")]),
        ("S3_BUCKET", vec![("S3_BUCKET", "MyBucket")]),
        (
            "BITBUCKET_STEP_OIDC_TOKEN",
            vec![
                ("AWS_OIDC_ROLE_ARN", role),
                ("BITBUCKET_STEP_OIDC_TOKEN", "abc.def"),
            ],
        ),
        (
            "AWS_OIDC_ROLE_ARN",
            vec![
                ("AWS_OIDC_ROLE_ARN", "my-role"),
                ("BITBUCKET_STEP_OIDC_TOKEN", "a.eyJzdWIiOiJ4In0.c"),
            ],
        ),
        (
            "AWS_ROLE_SESSION_DURATION",
            vec![("AWS_ROLE_SESSION_DURATION", "60")],
        ),
        (
            "AWS_ROLE_SESSION_NAME",
            vec![("AWS_ROLE_SESSION_NAME", "a b")],
        ),
        ("ACL", vec![("ACL", "public")]),
        ("STORAGE_CLASS", vec![("STORAGE_CLASS", "standard")]),
        ("SYNC_COMPARE", vec![("SYNC_COMPARE", "mtime")]),
        ("DELETE_FLAG", vec![("DELETE_FLAG", "yes")]),
        ("DRY_RUN", vec![("DRY_RUN", "maybe")]),
        ("FOLLOW_SYMLINKS", vec![("FOLLOW_SYMLINKS", "sure")]),
        ("S3_FORCE_PATH_STYLE", vec![("S3_FORCE_PATH_STYLE", "on")]),
        ("DEBUG", vec![("DEBUG", "verbose")]),
        ("MAX_DELETE", vec![("MAX_DELETE", "-1")]),
        ("WAIT", vec![("DISTRIBUTION_ID", "E1"), ("WAIT", "y")]),
        (
            "WAIT_TIMEOUT",
            vec![("DISTRIBUTION_ID", "E1"), ("WAIT_TIMEOUT", "0")],
        ),
        (
            "MAX_INVALIDATION_PATHS",
            vec![("DISTRIBUTION_ID", "E1"), ("MAX_INVALIDATION_PATHS", "0")],
        ),
        (
            "INVALIDATION_PREFIX",
            vec![("DISTRIBUTION_ID", "E1"), ("INVALIDATION_PREFIX", "www")],
        ),
        (
            "AWS_DEFAULT_REGION",
            vec![("AWS_DEFAULT_REGION", "eu west 1")],
        ),
        ("AWS_SECRET_ACCESS_KEY", vec![("AWS_SECRET_ACCESS_KEY", "")]),
    ];
    for (var, overrides) in cases {
        let mut vars: Vec<(&str, String)> = key_vars(&proxy.url());
        vars.push(("S3_BUCKET", "good-bucket".into()));
        vars.push(("LOCAL_PATH", local.clone()));
        for (k, v) in &overrides {
            vars.retain(|(kk, _)| kk != k);
            if !v.is_empty() {
                vars.push((k, v.to_string()));
            }
        }
        if var == "AWS_SECRET_ACCESS_KEY" {
            vars.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
        }
        let run = run_pipe(&as_refs(&vars));
        assert_eq!(run.code, 2, "{var} {overrides:?}: {}", run.all());
        assert!(
            run.stderr.contains(&format!("✖ {var}")),
            "{var} {overrides:?} not named: {}",
            run.all()
        );
    }
    assert!(
        proxy.requests().is_empty(),
        "no request may be made on bad input"
    );
}

#[test]
fn no_secret_in_output_across_oidc_sync_invalidation_and_a_failure() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "sec");
    let dist = create_distribution(&moto.url());
    let dir = site(&[("index.html", b"<p>1</p>"), ("a.js", b"1")]);
    let token = oidc_token();
    let local = dir.path().display().to_string();
    let url = proxy.url();
    let vars = vec![
        ("DEBUG", "true"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/Deploy"),
        ("BITBUCKET_STEP_OIDC_TOKEN", token.as_str()),
        ("S3_BUCKET", "sec"),
        ("LOCAL_PATH", local.as_str()),
        ("DISTRIBUTION_ID", dist.as_str()),
        ("WAIT", "true"),
    ];
    let ok = run_pipe(&vars);
    ok.assert_code(0).assert_contains("Invalidation ");
    let sts = proxy
        .requests()
        .into_iter()
        .find(|r| r.is_sts())
        .expect("sts");
    let xml = String::from_utf8_lossy(&sts.response_body).to_string();
    let secret = xml_value(&xml, "SecretAccessKey").expect("secret");
    let session = xml_value(&xml, "SessionToken").expect("session token");
    // A failing run: uploads denied.
    proxy.set_rules(vec![Rule::new(
        Match::any().method("PUT"),
        Action::s3_error(403, "AccessDenied", "denied"),
    )]);
    write_files(dir.path(), &[("a.js", b"2")]);
    let failed = run_pipe(&vars);
    failed.assert_code(1);
    let all = format!("{}\n{}", ok.all(), failed.all());
    assert!(all.contains("DEBUG"), "debug output is on");
    for s in [&token, &secret, &session] {
        assert!(!all.contains(s.as_str()), "a secret leaked");
    }
    for i in 0..token.len().saturating_sub(16) {
        let window = &token[i..i + 17];
        assert!(
            !all.contains(window),
            "17 characters of the token leaked: {window}"
        );
    }
}

#[cfg(unix)]
#[test]
fn hostile_trees_are_survived_with_named_warnings() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let moto = Moto::start();
    create_bucket(&moto.url(), "hostile");
    let outside = tempfile::tempdir().expect("tmp");
    write_files(outside.path(), &[("secret.txt", b"outside")]);
    let dir = site(&[("ok.txt", b"ok"), ("sub/unreadable.txt", b"u")]);
    symlink(dir.path(), dir.path().join("sub/loop")).expect("loop");
    symlink(
        outside.path().join("secret.txt"),
        dir.path().join("escape.txt"),
    )
    .expect("escape");
    symlink(dir.path().join("missing"), dir.path().join("broken.txt")).expect("broken");
    let unreadable = dir.path().join("sub/unreadable.txt");
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let root_can_read = std::fs::File::open(&unreadable).is_ok();
    // A path of 1,000 characters (kept) and one over S3's 1,024-byte key limit (skipped).
    let seg = "d".repeat(240);
    let long_rel = format!("{seg}/{seg}/{seg}/{seg}/{}.txt", "f".repeat(32));
    assert_eq!(long_rel.len(), 1000);
    let too_long = format!("{seg}/{seg}/{seg}/{seg}/{}.txt", "g".repeat(70));
    write_files(
        dir.path(),
        &[
            (long_rel.as_str(), b"long"),
            (too_long.as_str(), b"too long"),
        ],
    );

    let mut vars = key_vars(&moto.url());
    vars.extend([
        ("S3_BUCKET", "hostile".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
    ]);
    // What could not be deployed fails the step (aws-cli exits 2), after everything else is
    // done; the link that leaves LOCAL_PATH does not: skipping it is the configured policy.
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(1)
        .assert_contains("escape.txt: symlink points outside LOCAL_PATH")
        .assert_contains("broken.txt")
        .assert_contains("symlink loop")
        .assert_contains("more than S3's limit of 1024")
        .assert_contains(&format!(
            "Sync to s3://hostile/: {} file(s) or folder(s) in LOCAL_PATH were skipped or need attention (broken.txt, ",
            if root_can_read { 3 } else { 4 }
        ))
        .assert_contains("sub/loop/")
        .assert_contains("ggg");
    if !root_can_read {
        run.assert_contains("unreadable.txt: file is not readable");
    }
    let fail_line = run
        .stderr
        .lines()
        .find(|l| l.contains("were skipped or need attention"))
        .expect("✖ line");
    assert!(!fail_line.contains("escape.txt"), "{fail_line}");
    // ALLOW_SKIPPED_FILES=true keeps the old behaviour: warnings, and success.
    vars.push(("ALLOW_SKIPPED_FILES", "true".to_string()));
    run_pipe(&as_refs(&vars))
        .assert_code(0)
        .assert_contains("broken.txt")
        .assert_contains("file(s) skipped (ALLOW_SKIPPED_FILES)");
    let keys = keys(&moto.url(), "hostile");
    assert!(keys.contains(&long_rel));
    assert!(keys.contains(&"ok.txt".to_string()));
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("escape") || k.contains("ggg") || k.contains("loop/"))
    );
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o644))
        .expect("chmod back");
}

#[test]
fn a_file_that_grows_while_uploading_ends_as_one_consistent_version() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "grow");
    let dir = site(&[("growing.log", b"first version\n")]);
    // The first PUT of the file is slow; meanwhile the file grows.
    proxy.set_rules(vec![
        Rule::new(
            Match::any().method("PUT").path_contains("growing.log"),
            Action::Delay(Duration::from_millis(1200)),
        )
        .times(1),
    ]);
    let path = dir.path().join("growing.log");
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "grow".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
    ]);
    let child = pipe_command(&as_refs(&vars), None)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The file grows once the proxy holds the first PUT of it (its answer is delayed): the
    // upload is then in flight, whatever the machine's speed. No sleeping against the clock.
    let start = Instant::now();
    while !proxy
        .requests()
        .iter()
        .any(|r| r.is_put_object() && r.path.ends_with("growing.log"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the PUT never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut data = std::fs::read(&path).expect("read");
    data.extend_from_slice(b"second version, longer\n");
    std::fs::write(&path, data).expect("grow");
    let out = child.wait_with_output().expect("wait");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    run.assert_code(0)
        .assert_contains("growing.log changed while it was uploaded");
    let final_bytes = std::fs::read(&path).expect("read");
    assert_eq!(get(&moto.url(), "grow", "growing.log"), final_bytes);
    let o = list(&moto.url(), "grow").pop().expect("object");
    assert_eq!(o.etag, local_md5(&final_bytes), "ETag matches the content");
}

#[test]
fn ten_thousand_files_in_one_directory() {
    let moto = Moto::start();
    create_bucket(&moto.url(), "many");
    let dir = tempfile::tempdir().expect("tmp");
    for i in 0..10_000 {
        std::fs::write(dir.path().join(format!("{i:05}.txt")), i.to_string()).expect("write");
    }
    let mut vars = key_vars(&moto.url());
    vars.extend([
        ("S3_BUCKET", "many".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("EXTRA_ARGS", "--only-show-errors".to_string()),
    ]);
    run_pipe(&as_refs(&vars))
        .assert_code(0)
        .assert_contains("10000 uploaded");
    assert_eq!(list(&moto.url(), "many").len(), 10_000);
}
