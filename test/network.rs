//! Networks as they fail in real life: connections that stall (request read, never answered),
//! answers lost after the work was done, slow but moving answers, refused connections, unknown
//! hosts and CAs, missing credentials, a bucket in another region, and signals while every
//! write hangs. Timeouts are short, set through the variables users set.

use std::time::Duration;

use crate::support::proxy::{Action, Match, Proxy, Recorded, Rule};
use crate::support::*;

/// Short stall detection for tests, through the pipe's own variables.
const TIMEOUTS: [(&str, &str); 2] = [("READ_TIMEOUT", "2"), ("CONNECT_TIMEOUT", "2")];

/// No output line may carry a Rust debug dump of an SDK type.
#[track_caller]
fn assert_no_debug_dump(run: &Run) {
    for dump in ["DispatchFailure", "ConnectorError", "Some(", "source:"] {
        assert!(
            !run.all().contains(dump),
            "debug text {dump:?} in the output:\n{}",
            run.all()
        );
    }
}

#[test]
fn a_deploy_with_three_percent_of_requests_never_answered_ends_with_the_bucket_equal_to_the_source()
{
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "stall");
    let dist = create_distribution(&moto.url());
    for i in 0..30 {
        put(&moto.url(), "stall", &format!("stale/{i}.txt"), b"old");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mut expected = Vec::new();
    for i in 0..300 {
        let rel = format!("d{}/{i}.txt", i % 13);
        let body = format!("file {i} {}", "y".repeat(i % 40)).into_bytes();
        write_files(dir.path(), &[(rel.as_str(), body.as_slice())]);
        expected.push((rel, body.len() as i64, local_md5(&body)));
    }
    let big = deterministic_bytes(9 * 1024 * 1024 + 77, 5);
    write_files(dir.path(), &[("big.bin", big.as_slice())]);
    // The first request of every kind is black-holed once (request read, never answered), the
    // CompleteMultipartUpload and DeleteObjects after the work was done (answer lost); then 3%
    // of all requests (seeded, so the same run every time) are never answered.
    proxy.set_rules(vec![
        Rule::new(
            Match::any().body_contains("AssumeRoleWithWebIdentity"),
            Action::Stall,
        )
        .times(1),
        Rule::new(
            Match::any().method("GET").query_contains("list-type=2"),
            Action::Stall,
        )
        .times(1),
        Rule::new(
            Match::any().method("PUT").path_contains("/d3/"),
            Action::Stall,
        )
        .times(1),
        Rule::new(
            Match::any().method("PUT").query_contains("partNumber="),
            Action::Stall,
        )
        .times(1),
        Rule::new(
            Match::any().method("POST").query_contains("uploadId="),
            Action::LoseAnswer,
        )
        .times(1),
        // S3 documents NoSuchUpload for an upload that was "aborted or completed": what a
        // retried CompleteMultipartUpload may meet after the lost answer above (moto would
        // answer 200 again). The pipe checks the object's multipart ETag and accepts it.
        Rule::new(
            Match::any().method("POST").query_contains("uploadId="),
            Action::s3_error(404, "NoSuchUpload", "The specified upload does not exist."),
        )
        .times(1),
        Rule::new(
            Match::any().method("POST").query_contains("delete"),
            Action::LoseAnswer,
        )
        .times(1),
        Rule::new(
            Match::any().method("POST").path_contains("/invalidation"),
            Action::Stall,
        )
        .times(1),
        Rule::new(Match::any(), Action::Stall).probability(0.03),
    ]);
    let token = oidc_token();
    let local = dir.path().display().to_string();
    let url = proxy.url();
    let mut vars = vec![
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/Deploy"),
        ("BITBUCKET_STEP_OIDC_TOKEN", token.as_str()),
        ("S3_BUCKET", "stall"),
        ("LOCAL_PATH", local.as_str()),
        ("DELETE_FLAG", "true"),
        ("DISTRIBUTION_ID", dist.as_str()),
        ("BITBUCKET_BUILD_NUMBER", "7"),
    ];
    vars.extend(TIMEOUTS);
    let run = run_pipe(&vars);
    run.assert_code(0).assert_contains("Invalidation ");
    let fired = proxy.fired();
    assert_eq!(
        &fired[..8],
        &[1; 8],
        "each kind of request was stalled once: {fired:?}"
    );
    assert!(fired[8] > 0, "random stalls were injected: {fired:?}");
    let reqs = proxy.requests();
    let count = |f: &dyn Fn(&Recorded) -> bool| reqs.iter().filter(|r| f(r)).count();
    assert!(count(&|r| r.is_sts()) >= 2, "STS retried");
    assert!(
        count(&|r| r.is_complete_multipart_upload()) >= 2,
        "Complete retried"
    );
    assert!(
        count(&|r| r.is_delete_objects()) >= 2,
        "DeleteObjects retried"
    );
    assert!(
        reqs.iter()
            .any(|r| r.is_head_object() && r.path.ends_with("/big.bin")),
        "the NoSuchUpload answer was checked against the object"
    );
    assert!(
        count(&|r| r.is_create_invalidation()) >= 2,
        "CloudFront retried"
    );

    let listed = list(&moto.url(), "stall");
    let by_key: std::collections::BTreeMap<_, _> =
        listed.iter().map(|o| (o.key.clone(), o)).collect();
    assert_eq!(listed.len(), 301, "300 files + big.bin; stale keys deleted");
    for (key, size, etag) in &expected {
        let o = by_key.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!((o.size, &o.etag), (*size, etag), "{key}");
    }
    assert_eq!(get(&moto.url(), "stall", "big.bin"), big);
    assert_eq!(open_uploads(&moto.url(), "stall"), 0);
    let invs = invalidations(&moto.url(), &dist);
    assert_eq!(invs.len(), 1, "one invalidation, however often it was sent");
}

#[test]
fn a_slow_but_moving_answer_is_not_cut() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "slow");
    for i in 0..40 {
        put(&moto.url(), "slow", &format!("keep/{i:02}.txt"), b"same");
    }
    let dir = tempfile::tempdir().expect("tmp");
    for i in 0..40 {
        write_files(
            dir.path(),
            &[(format!("keep/{i:02}.txt").as_str(), b"same".as_slice())],
        );
    }
    // The listing answer arrives in 8 pieces, one a second: 8 s in all, four times
    // READ_TIMEOUT, but never 2 s without data.
    proxy.set_rules(vec![Rule::new(
        Match::any().method("GET").query_contains("list-type=2"),
        Action::Trickle {
            chunks: 8,
            every: Duration::from_millis(1000),
        },
    )]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "slow".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("SYNC_COMPARE", "checksum".to_string()),
    ]);
    vars.extend(TIMEOUTS.map(|(k, v)| (k, v.to_string())));
    run_pipe(&as_refs(&vars))
        .assert_code(0)
        .assert_contains("0 uploaded");
    let lists = proxy.requests_where(|r| r.is_list_objects());
    assert_eq!(lists.len(), 1, "the slow listing was never cut and retried");
}

type Ready = fn(&Recorded) -> bool;

/// Spawn the pipe; for each step, wait until the proxy has seen a request for which the
/// predicate holds, then send the signal; then wait for the exit. A run still alive a minute
/// later fails the test.
fn signalled_run(proxy: &Proxy, vars: &[(&str, &str)], steps: &[(Ready, &str)]) -> Run {
    let signals: Vec<&str> = steps.iter().map(|(_, s)| *s).collect();
    let mut child = pipe_command(vars, None)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    for (ready, signal) in steps {
        let mut waited = 0;
        while !proxy.requests().iter().any(ready) {
            assert!(waited < 600, "the awaited request never came");
            std::thread::sleep(Duration::from_millis(100));
            waited += 1;
        }
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
    // Generous: the contract is seconds; the test only asserts that it exited.
    for _ in 0..600 {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait().expect("try_wait").is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        panic!(
            "still running a minute after {signals:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every write hangs (no READ_TIMEOUT: the requests would hang forever), aborts too.
fn everything_hangs() -> (Moto, Proxy, tempfile::TempDir) {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "hang");
    put(&moto.url(), "hang", "stale.js", b"old");
    let dir = tempfile::tempdir().expect("tmp");
    write_files(
        dir.path(),
        &[(
            "big.bin",
            deterministic_bytes(9 * 1024 * 1024, 2).as_slice(),
        )],
    );
    for i in 0..50 {
        write_files(
            dir.path(),
            &[(format!("f{i}.txt").as_str(), b"x".as_slice())],
        );
    }
    proxy.set_rules(vec![
        Rule::new(Match::any().method("PUT"), Action::Stall),
        Rule::new(Match::any().method("DELETE"), Action::Stall),
        Rule::new(
            Match::any().method("POST").query_contains("delete"),
            Action::Stall,
        ),
    ]);
    (moto, proxy, dir)
}

fn hang_vars(proxy: &Proxy, dir: &tempfile::TempDir) -> Vec<(&'static str, String)> {
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "hang".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("DELETE_FLAG", "true".to_string()),
        ("READ_TIMEOUT", "0".to_string()),
        // Every PUT hangs, so none completes and an adaptive number of requests in flight
        // stays at its start (32): the 50 small files would hold every permit and the part
        // upload these tests wait for would never start. A fixed 64 leaves it room.
        ("MAX_CONCURRENCY", "64".to_string()),
    ]);
    vars
}

#[test]
fn sigterm_while_every_write_hangs_exits_1_and_names_the_upload_left_open() {
    let (moto, proxy, dir) = everything_hangs();
    let vars = hang_vars(&proxy, &dir);
    let run = signalled_run(&proxy, &as_refs(&vars), &[(|r| r.is_upload_part(), "TERM")]);
    run.assert_code(1)
        .assert_contains("SIGTERM received: stopping")
        .assert_contains("could not be aborted")
        .assert_contains("AbortIncompleteMultipartUpload");
    let reqs = proxy.requests();
    assert!(
        reqs.iter().any(|r| r.is_abort_multipart_upload()),
        "an abort was attempted"
    );
    assert_eq!(reqs.iter().filter(|r| r.is_delete_objects()).count(), 0);
    let create = reqs
        .iter()
        .find(|r| r.is_create_multipart_upload())
        .expect("create");
    assert_eq!(create.s3_key().as_deref(), Some("big.bin"));
    let open = block_on(
        s3(&moto.url())
            .list_multipart_uploads()
            .bucket("hang")
            .send(),
    )
    .expect("list uploads");
    let id = open.uploads()[0].upload_id().expect("id").to_string();
    run.assert_contains(&format!("multipart upload {id} of s3://hang/big.bin"));
    assert!(keys(&moto.url(), "hang").contains(&"stale.js".to_string()));
}

#[test]
fn a_second_signal_exits_at_once() {
    let (_moto, proxy, dir) = everything_hangs();
    let vars = hang_vars(&proxy, &dir);
    // The second signal is sent once the first was acted on (the abort was sent).
    let run = signalled_run(
        &proxy,
        &as_refs(&vars),
        &[
            (|r| r.is_upload_part(), "INT"),
            (|r| r.is_abort_multipart_upload(), "INT"),
        ],
    );
    run.assert_code(1)
        .assert_contains("SIGINT received: stopping")
        .assert_contains("second SIGINT received: exiting at once");
    assert_eq!(
        proxy
            .requests()
            .iter()
            .filter(|r| r.is_delete_objects())
            .count(),
        0
    );
}

fn site_vars(dir: &tempfile::TempDir, endpoint: &str) -> Vec<(&'static str, String)> {
    let mut vars = key_vars(endpoint);
    vars.extend([
        ("S3_BUCKET", "first-try".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
    ]);
    vars
}

#[test]
fn no_credentials_at_all_is_one_line_naming_the_variables_before_any_request() {
    let proxy = Proxy::start("http://127.0.0.1:9");
    let dir = site(&[("a.txt", b"a")]);
    let mut vars = site_vars(&dir, &proxy.url());
    vars.retain(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"));
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(2)
        .assert_contains("✖ no AWS credentials found")
        .assert_contains("AWS_OIDC_ROLE_ARN")
        .assert_contains("oidc: true")
        .assert_contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    assert!(!run.all().contains("Syncing"), "no sync work started");
    assert_no_debug_dump(&run);
    assert!(proxy.requests().is_empty(), "no request was made");
}

#[test]
fn a_refused_connection_names_the_endpoint_and_the_variable() {
    let port = free_port(); // nothing listens there
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = site(&[("a.txt", b"a")]);
    let run = run_pipe(&as_refs(&site_vars(&dir, &endpoint)));
    run.assert_code(1).assert_contains(&format!(
        "✖ connection refused by {endpoint}: nothing listens there; check AWS_ENDPOINT_URL"
    ));
    assert_no_debug_dump(&run);
}

#[test]
fn an_unknown_host_is_a_dns_line_naming_the_endpoint() {
    let dir = site(&[("a.txt", b"a")]);
    let mut vars = site_vars(&dir, "http://no-such-host.invalid:9000");
    vars.push(("EXTRA_ARGS", "--cli-connect-timeout 2".to_string()));
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(1).assert_contains(
        "✖ cannot resolve the host of http://no-such-host.invalid:9000 (DNS): check the spelling of AWS_ENDPOINT_URL",
    );
    assert_no_debug_dump(&run);
}

#[test]
fn an_unknown_ca_fails_at_once_and_names_ssl_cert_file() {
    let tls = TlsMoto::start();
    let dir = site(&[("a.txt", b"a")]);
    let run = run_pipe(&as_refs(&site_vars(&dir, &tls.url)));
    run.assert_code(1)
        .assert_contains(&format!(
            "✖ TLS: the certificate of {} is not trusted",
            tls.url
        ))
        .assert_contains("set SSL_CERT_FILE or EXTRA_ARGS --ca-bundle");
    assert_no_debug_dump(&run);
    // With the CA trusted through SSL_CERT_FILE, the same run gets past TLS (the bucket does
    // not exist on this emulator: S3 says so).
    let mut vars = site_vars(&dir, &tls.url);
    vars.push(("SSL_CERT_FILE", tls.ca_pem.display().to_string()));
    run_pipe(&as_refs(&vars))
        .assert_code(1)
        .assert_contains("does not exist");
}

#[test]
fn ssl_cert_file_naming_a_missing_file_is_a_configuration_error() {
    let dir = site(&[("a.txt", b"a")]);
    let mut vars = site_vars(&dir, "http://127.0.0.1:9");
    vars.push(("SSL_CERT_FILE", "/no/such/bundle.pem".to_string()));
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(2)
        .assert_contains("✖ SSL_CERT_FILE: /no/such/bundle.pem is not a readable file");
}

#[test]
fn malformed_timeouts_are_named() {
    let dir = site(&[("a.txt", b"a")]);
    for (var, value) in [("READ_TIMEOUT", "30s"), ("CONNECT_TIMEOUT", "soon")] {
        let mut vars = site_vars(&dir, "http://127.0.0.1:9");
        vars.push((var, value.to_string()));
        run_pipe(&as_refs(&vars))
            .assert_code(2)
            .assert_contains(&format!(
                "✖ {var}: \"{value}\" is not a whole number of seconds"
            ));
    }
}

#[test]
fn a_bucket_in_another_region_is_followed_with_one_info_line() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "elsewhere");
    put(&moto.url(), "elsewhere", "stale.txt", b"old");
    let dir = site(&[("index.html", b"<p>hi</p>"), ("a.css", b"a")]);
    // As S3 does, every request signed for us-east-1 gets a redirect to eu-west-1 (the first
    // ones run concurrently: the listing, the versioning and the release state).
    proxy.set_rules(vec![Rule::new(
        Match::any().header_contains("authorization", "/us-east-1/s3/"),
        Action::s3_wrong_region("elsewhere", "eu-west-1"),
    )]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "elsewhere".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("DELETE_FLAG", "true".to_string()),
    ]);
    run_pipe(&as_refs(&vars))
        .assert_code(0)
        .assert_contains("INFO: bucket elsewhere is in eu-west-1, not us-east-1: using eu-west-1");
    assert_eq!(keys(&moto.url(), "elsewhere"), vec!["a.css", "index.html"]);
    let reqs = proxy.requests();
    let scope = |r: &Recorded| {
        r.header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(2))
            .map(str::to_string)
    };
    let wrong = reqs
        .iter()
        .take_while(|r| scope(r).as_deref() == Some("us-east-1"))
        .count();
    assert!(wrong >= 1, "the first request is signed for us-east-1");
    assert!(
        reqs[..wrong].iter().all(|r| r.status == 301),
        "S3 redirected them"
    );
    for r in &reqs[wrong..] {
        assert_eq!(
            scope(r).as_deref(),
            Some("eu-west-1"),
            "every request after the redirect is signed for the bucket's region: {} {}",
            r.method,
            r.path
        );
    }
}

#[test]
fn a_stalled_copy_object_is_retried_when_headers_are_re_applied() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "rehead");
    let dir = site(&[("a.css", b"a"), ("b.css", b"b")]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "rehead".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("SYNC_COMPARE", "checksum".to_string()),
    ]);
    vars.extend(TIMEOUTS.map(|(k, v)| (k, v.to_string())));
    run_pipe(&as_refs(&vars)).assert_code(0);
    // New header settings: the unchanged objects are copied onto themselves; the first copy
    // of a.css is never answered.
    proxy.clear_requests();
    proxy.set_rules(vec![
        Rule::new(
            Match::any().method("PUT").path_contains("/a.css"),
            Action::Stall,
        )
        .times(1),
    ]);
    vars.push(("CACHE_CONTROL", "max-age=60".to_string()));
    run_pipe(&as_refs(&vars))
        .assert_code(0)
        .assert_contains("2 headers re-applied");
    assert_eq!(proxy.fired(), vec![1]);
    let copies = proxy.requests_where(|r| r.is_copy_object() && r.path.ends_with("/a.css"));
    assert!(copies.len() >= 2, "the stalled CopyObject was retried");
    assert_eq!(
        headers_of(&moto.url(), "rehead", "a.css")
            .get("cache-control")
            .map(String::as_str),
        Some("max-age=60")
    );
}

#[test]
fn a_clock_off_by_more_than_fifteen_minutes_is_named() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "skew");
    let dir = site(&[("a.txt", b"a")]);
    proxy.set_rules(vec![Rule::new(
        Match::any(),
        Action::s3_error(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ),
    )]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "skew".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
    ]);
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(1)
        .assert_contains("RequestTimeTooSkewed: the runner's clock differs from AWS's")
        .assert_contains("NTP");
    assert_no_debug_dump(&run);
}
