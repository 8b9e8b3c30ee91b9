//! No value of any pipe variable crashes the pipe (#15): the process ends with 0, 1 or 2 and a
//! readable line, never a panic (exit 101, or 134 with `panic = "abort"` in the image).

use crate::support::proxy::{Action, Match, Proxy, Rule};
use crate::support::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

/// Every pipe variable, read from the struct the pipe reads them into.
fn every_variable() -> Vec<String> {
    include_str!("../src/config/raw.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.strip_suffix(": Option<String>,"))
        .map(str::to_ascii_uppercase)
        .collect()
}

/// A key id pasted with a zero-width space: it panicked in the key masking (exit 134 in the
/// image). Now a configuration error naming the variable, and nothing is sent.
#[test]
fn a_pasted_invisible_character_in_a_key_is_named_and_nothing_is_sent() {
    let proxy = Proxy::start("http://127.0.0.1:9");
    let dir = site(&[("a.txt", b"a")]);
    for (var, value) in [
        ("AWS_ACCESS_KEY_ID", "AKI\u{200b}AIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG\u{a0}bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_SESSION_TOKEN", "FwoGZXIv\nYXdzE"),
    ] {
        let mut vars: Vec<(&str, String)> = key_vars(&proxy.url())
            .into_iter()
            .filter(|(k, _)| *k != var)
            .collect();
        vars.extend([
            (var, value.to_string()),
            ("S3_BUCKET", "bkt".to_string()),
            ("LOCAL_PATH", dir.path().display().to_string()),
        ]);
        let run = run_pipe(&as_refs(&vars));
        run.assert_code(2)
            .assert_contains(&format!("✖ {var}: holds"))
            .assert_contains("paste the value again without it");
        assert!(!run.all().contains("panicked"), "{}", run.all());
        if var != "AWS_ACCESS_KEY_ID" {
            assert!(!run.all().contains(value.trim()), "the secret was printed");
        }
    }
    assert!(proxy.requests().is_empty(), "a request was sent");
}

/// One to three variables at a time, on top of a configuration that deploys, set to arbitrary
/// values: Unicode, control characters, huge, empty. The run ends with 0 (the value was fine),
/// 1 (AWS or the store refused it) or 2 (configuration named it), never with a crash.
#[test]
fn arbitrary_values_end_in_a_normal_exit() {
    let moto = Moto::start();
    create_bucket(&moto.url(), "fuzz");
    let dir = site(&[("index.html", b"<h1>hi</h1>"), ("a/b.css", b"b{}")]);
    let names = every_variable();
    assert!(names.len() > 40, "variables found: {names:?}");
    // No NUL (an environment string cannot hold one), at most 100 kB (the kernel's limit for
    // one environment string is 128 kB).
    let value = prop_oneof![
        "[^\u{0}]{0,30}",
        "[ -~]{0,30}",
        Just(String::new()),
        (
            any::<char>().prop_filter("no NUL", |c| *c != '\0'),
            1usize..25_000
        )
            .prop_map(|(c, n)| c.to_string().repeat(n)),
    ];
    let picked = proptest::collection::vec((0..names.len(), value), 1..=3);
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases: 48,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[15; 32]),
    );
    let base: Vec<(&str, String)> = key_vars(&moto.url())
        .into_iter()
        .chain([
            ("S3_BUCKET", "fuzz".to_string()),
            ("LOCAL_PATH", dir.path().display().to_string()),
            ("READ_TIMEOUT", "5".to_string()),
        ])
        .collect();
    let cwd = tempfile::tempdir().expect("tmp");
    let codes = std::cell::RefCell::new([0usize; 3]);
    runner
        .run(&picked, |picked| {
            let mut vars: Vec<(String, String)> = base
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            for (i, v) in &picked {
                vars.retain(|(k, _)| k != &names[*i]);
                // Never point the run at a real AWS endpoint or a remote host.
                if names[*i].starts_with("AWS_ENDPOINT_URL") {
                    continue;
                }
                vars.push((names[*i].clone(), v.clone()));
            }
            let refs: Vec<(&str, &str)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            // In a folder of its own: a fuzzed REPORT_FILE is a relative path, written there and
            // not into the project (two such reports were once committed by accident).
            let run = run_pipe_in(&refs, Some(cwd.path()));
            let shown: Vec<String> = picked
                .iter()
                .map(|(i, v)| format!("{}={:?}", names[*i], v.chars().take(40).collect::<String>()))
                .collect();
            prop_assert!(
                (0..=2).contains(&run.code),
                "exit {} with {shown:?}:\n{}",
                run.code,
                run.all()
            );
            prop_assert!(!run.all().contains("panicked"), "{shown:?}:\n{}", run.all());
            if run.code != 0 {
                prop_assert!(
                    run.all().contains('✖'),
                    "{shown:?}: no ✖ line:\n{}",
                    run.all()
                );
            }
            codes.borrow_mut()[run.code as usize] += 1;
            Ok(())
        })
        .map_err(|e| e.to_string())
        .expect("every run ends normally");
    // The cases reach past configuration: some deploy, some are refused in configuration.
    let codes = codes.into_inner();
    eprintln!("exit codes 0/1/2 over the cases: {codes:?}");
    assert!(codes[0] > 0 && codes[2] > 0, "exit codes 0/1/2: {codes:?}");
}

/// Something other than S3 answers (a proxy, a load balancer): an error status with an empty
/// body. The line says so, with the status, instead of `✖ error: ` and nothing else.
#[test]
fn an_answer_without_an_error_code_is_named_by_its_status() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "front");
    proxy.set_rules(vec![Rule::new(
        Match::any(),
        Action::Respond {
            status: 403,
            content_type: "text/html".into(),
            body: String::new(),
        },
    )]);
    let dir = site(&[("a.txt", b"a")]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "front".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
    ]);
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(1)
        .assert_contains("HTTP 403 answer with no error code or message")
        .assert_contains("check AWS_ENDPOINT_URL");
    assert!(!run.all().contains("✖ error: \n"), "{}", run.all());
}

// ---- The report is written for every run, also one that ends early (#15 item 4) ----

/// Read the report a run wrote.
fn report(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the report is JSON")
}

fn assert_failed_report(r: &serde_json::Value, code: u64, error_has: &str) {
    assert_eq!(r["schema"], 3, "{r}");
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(r["exit_code"], code, "{r}");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(error_has),
        "error {error:?} lacks {error_has:?}"
    );
}

#[test]
fn a_configuration_error_writes_a_report_that_names_it() {
    let reports = tempfile::tempdir().expect("tmp");
    // In Bitbucket: the shared storage folder.
    let run = run_pipe(&[
        (
            "BITBUCKET_PIPE_SHARED_STORAGE_DIR",
            &reports.path().display().to_string(),
        ),
        ("S3_BUCKET", "Not_A_Bucket!"),
        ("LOCAL_PATH", "."),
        ("MAX_DELETE", "lots"),
    ]);
    run.assert_code(2);
    let r = report(&reports.path().join("s3-deploy-pipe").join("report.json"));
    assert_failed_report(&r, 2, "S3_BUCKET");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or_default()
            .contains("MAX_DELETE")
    );
    assert_eq!(r["sync"], serde_json::Value::Null);
}

#[test]
fn sts_refusing_writes_a_report_without_the_token() {
    let proxy = Proxy::start("http://127.0.0.1:9");
    proxy.set_rules(vec![Rule::new(
        Match::any().body_contains("Action=AssumeRoleWithWebIdentity"),
        Action::sts_error(
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ),
    )]);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 3600)
        .unwrap_or(0);
    let token = s3_deploy_pipe::jwt::make_test_token(&format!(
        r#"{{"iss":"https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc","aud":"ari:cloud:bitbucket::workspace/0000-1111","sub":"{{repo}}:{{step}}","exp":{exp}}}"#
    ));
    let reports = tempfile::tempdir().expect("tmp");
    let file = reports.path().join("deploy.json");
    let run = run_pipe(&[
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", &proxy.url()),
        (
            "AWS_OIDC_ROLE_ARN",
            "arn:aws:iam::123456789012:role/BitbucketDeploy",
        ),
        ("BITBUCKET_STEP_OIDC_TOKEN", &token),
        ("DISTRIBUTION_ID", "E1"),
        ("REPORT_FILE", &file.display().to_string()),
    ]);
    run.assert_code(1);
    let r = report(&file);
    assert_failed_report(&r, 1, "STS refused AssumeRoleWithWebIdentity");
    assert!(
        !r.to_string().contains(&token),
        "the token is in the report"
    );
}

#[test]
fn a_failed_listing_and_a_delete_guard_write_reports() {
    let moto = Moto::start();
    create_bucket(&moto.url(), "guarded");
    for k in ["old1.js", "old2.js", "old3.js"] {
        put(&moto.url(), "guarded", k, b"old");
    }
    let dir = site(&[("index.html", b"<h1>hi</h1>")]);
    let reports = tempfile::tempdir().expect("tmp");
    let file = reports.path().join("r.json");
    let vars = |bucket: &str, extra: &[(&'static str, &str)]| {
        let mut v = key_vars(&moto.url());
        v.extend([
            ("S3_BUCKET", bucket.to_string()),
            ("LOCAL_PATH", dir.path().display().to_string()),
            ("REPORT_FILE", file.display().to_string()),
        ]);
        v.extend(extra.iter().map(|(k, x)| (*k, x.to_string())));
        v
    };
    // The bucket does not exist: the listing fails.
    run_pipe(&as_refs(&vars("no-such-bucket", &[]))).assert_code(1);
    assert_failed_report(&report(&file), 1, "no-such-bucket");

    // MAX_DELETE stops the run before anything is written.
    std::fs::remove_file(&file).expect("rm");
    run_pipe(&as_refs(&vars(
        "guarded",
        &[("DELETE_FLAG", "true"), ("MAX_DELETE", "2")],
    )))
    .assert_code(1);
    assert_failed_report(&report(&file), 1, "MAX_DELETE=2");
    assert_eq!(keys(&moto.url(), "guarded").len(), 3, "nothing deleted");
}

/// A refused DeleteObjects batch: the report lists the keys that were not deleted, never a
/// made-up key such as `www/(delete)`.
#[test]
fn a_refused_delete_batch_reports_the_keys_it_kept() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "keep");
    for k in ["www/old1.js", "www/old2.js"] {
        put(&moto.url(), "keep", k, b"old");
    }
    proxy.set_rules(vec![Rule::new(
        Match::any().method("POST").query_contains("delete"),
        Action::s3_error(403, "AccessDenied", "Access Denied"),
    )]);
    let dir = site(&[("index.html", b"<h1>hi</h1>")]);
    let reports = tempfile::tempdir().expect("tmp");
    let file = reports.path().join("r.json");
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "keep/www".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("DELETE_FLAG", "true".to_string()),
        ("REPORT_FILE", file.display().to_string()),
    ]);
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(1).assert_contains("(old1.js, old2.js)");
    assert!(!run.all().contains("(delete)"), "{}", run.all());
    let r = report(&file);
    assert_failed_report(&r, 1, "2 operation(s) failed");
    let mut failed: Vec<String> = r["sync"]["failed"]
        .as_array()
        .expect("failed[]")
        .iter()
        .map(|f| f["key"].as_str().unwrap_or("(null)").to_string())
        .collect();
    failed.sort();
    assert_eq!(failed, ["www/old1.js", "www/old2.js"]);
    assert_eq!(keys(&moto.url(), "keep").len(), 3, "nothing deleted");
}

// ---- Credentials outlive a long deploy (#15 item 6) ----

/// STS's first answer expires in a minute (a deploy longer than the session, compressed in
/// time): the pipe exchanges the step's token again before the credentials expire, and the
/// sync goes on signed with the new ones.
#[test]
fn role_credentials_are_renewed_before_they_expire() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "long");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let soon = aws_smithy_types::DateTime::from_secs(i64::try_from(now + 60).unwrap_or(0))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .expect("date");
    let answer = format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>repo:step</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/BitbucketDeploy/s</Arn>
      <AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAFIRSTSESSION0001</AccessKeyId>
      <SecretAccessKey>firstSecretKeyThatExpiresInOneMinute00000</SecretAccessKey>
      <SessionToken>FirstSessionTokenThatExpiresSoon</SessionToken>
      <Expiration>{soon}</Expiration>
    </Credentials>
    <Audience>ari:cloud:bitbucket::workspace/0000</Audience>
    <Provider>api.bitbucket.org</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>proxy-1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
    );
    proxy.set_rules(vec![
        Rule::new(
            Match::any().body_contains("Action=AssumeRoleWithWebIdentity"),
            Action::Respond {
                status: 200,
                content_type: "text/xml".into(),
                body: answer,
            },
        )
        .times(1),
    ]);
    let token = s3_deploy_pipe::jwt::make_test_token(&format!(
        r#"{{"iss":"https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc","aud":"ari:cloud:bitbucket::workspace/0000","sub":"{{repo}}:{{step}}","exp":{}}}"#,
        now + 3600
    ));
    let dir = site(&[("index.html", b"<h1>hi</h1>"), ("a.css", b"a{}")]);
    let run = run_pipe(&[
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", &proxy.url()),
        (
            "AWS_OIDC_ROLE_ARN",
            "arn:aws:iam::123456789012:role/BitbucketDeploy",
        ),
        ("BITBUCKET_STEP_OIDC_TOKEN", &token),
        ("S3_BUCKET", "long"),
        ("LOCAL_PATH", &dir.path().display().to_string()),
    ]);
    run.assert_code(0)
        .assert_contains("Renewed the role's credentials before they expired");
    assert!(!run.all().contains("firstSecretKey"), "{}", run.all());
    let reqs = proxy.requests();
    let exchanges = reqs.iter().filter(|r| r.is_sts()).count();
    assert_eq!(exchanges, 2, "the token was exchanged again");
    // The listing may still be signed with the first credentials (valid for a minute yet);
    // every upload, made after the renewal, is signed with the new ones.
    let puts: Vec<_> = reqs.iter().filter(|r| r.is_put_object()).collect();
    assert_eq!(puts.len(), 2);
    for r in puts {
        let key = r.access_key.as_deref().unwrap_or_default();
        assert!(
            !key.is_empty() && key != "ASIAFIRSTSESSION0001",
            "{} {} signed with {key:?}",
            r.method,
            r.path
        );
    }
    assert_eq!(keys(&moto.url(), "long"), ["a.css", "index.html"]);
}
