//! Unit tests of the whole resolution: variables in, a `Config` or the problems out.

use super::credentials::role_arn_problem;
use super::rules::parse_expires;
use super::sync::bucket_name_problem;
use super::*;

fn resolve(pairs: &[(&str, &str)]) -> Result<Config, Vec<Problem>> {
    let env = Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)));
    Config::from_env(&env).map_err(|ConfigError::Invalid(p)| p)
}

fn problems_for(pairs: &[(&str, &str)]) -> Vec<String> {
    resolve(pairs)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.variable)
        .collect()
}

#[test]
fn booleans() {
    for (v, want) in [
        ("true", Some(true)),
        ("TRUE", Some(true)),
        ("1", Some(true)),
        ("False", Some(false)),
        ("0", Some(false)),
        ("yes", None),
        ("", None),
    ] {
        assert_eq!(parse_bool(v), want, "{v}");
    }
}

/// Every pipe variable, read from `RawVars` itself, so a new variable is covered at once.
fn every_variable() -> Vec<String> {
    include_str!("raw.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.strip_suffix(": Option<String>,"))
        .map(str::to_ascii_uppercase)
        .collect()
}

/// No value of any variable makes configuration panic: arbitrary Unicode, control
/// characters, huge and empty values, one to four variables at a time on top of a valid
/// configuration. A fixed seed and a bounded number of cases, so CI runs the same cases.
#[test]
fn no_value_of_any_variable_panics() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
    let names = every_variable();
    assert!(names.len() > 40, "variables found in raw.rs: {names:?}");
    let value = prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[ -~]{0,40}",
        Just(String::new()),
        (any::<char>(), 1usize..200_000).prop_map(|(c, n)| c.to_string().repeat(n)),
        Just("AKI\u{200b}EXAMPLE".to_string()),
    ];
    let vars = proptest::collection::vec((0..names.len(), value), 1..=4);
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases: 512,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    runner
        .run(&vars, |picked| {
            let mut pairs: std::collections::BTreeMap<String, String> = [
                ("S3_BUCKET", "bkt"),
                ("LOCAL_PATH", "."),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("DISTRIBUTION_ID", "E123"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            for (i, v) in picked {
                pairs.insert(names[i].clone(), v);
            }
            // Ok or a list of problems, each naming a variable: never a panic.
            if let Err(ConfigError::Invalid(problems)) = Config::from_env(&Env::from_pairs(pairs)) {
                prop_assert!(!problems.is_empty());
                for p in problems {
                    prop_assert!(!p.variable.is_empty());
                }
            }
            Ok(())
        })
        .map_err(|e| e.to_string())
        .expect("configuration survives every value");
}

#[test]
fn debug_output_of_the_configuration_shows_no_secret() {
    let cfg = resolve(&[
        ("S3_BUCKET", "bkt"),
        ("LOCAL_PATH", "."),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY",
        ),
        ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"),
    ])
    .expect("valid");
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    assert!(!shown.contains("FwoGZXIvYXdz"), "{shown}");
    assert_eq!(cfg.secrets.len(), 2);
}

#[test]
fn path_style_follows_the_endpoint_unless_set() {
    let path_style = |extra: &[(&str, &str)]| {
        let mut v = vec![("S3_BUCKET", "bkt"), ("LOCAL_PATH", ".")];
        v.extend_from_slice(extra);
        resolve(&v)
            .expect("valid")
            .sync()
            .map(|s| s.force_path_style)
    };
    assert_eq!(path_style(&[]), Some(false), "AWS: virtual-hosted");
    for endpoint in [
        "http://localhost:9000",
        "http://minio:9000/",
        "https://storage.example.com",
        "http://127.0.0.1:5000",
    ] {
        assert_eq!(
            path_style(&[("AWS_ENDPOINT_URL", endpoint)]),
            Some(true),
            "{endpoint}"
        );
    }
    for endpoint in [
        "https://s3.eu-west-1.amazonaws.com",
        "https://s3.cn-north-1.amazonaws.com.cn",
        "https://s3.dualstack.us-east-1.api.aws",
        "https://bucket.vpce-1a2b.s3.us-east-1.vpce.amazonaws.com:443/",
    ] {
        assert_eq!(
            path_style(&[("AWS_ENDPOINT_URL", endpoint)]),
            Some(false),
            "{endpoint}"
        );
    }
    assert_eq!(
        path_style(&[("AWS_ENDPOINT_URL_S3", "http://minio:9000")]),
        Some(true)
    );
    assert_eq!(
        path_style(&[("EXTRA_ARGS", "--endpoint-url http://minio:9000")]),
        Some(true),
        "the aws-cli flag counts too"
    );
    assert_eq!(
        path_style(&[
            ("AWS_ENDPOINT_URL", "http://localhost:9000"),
            ("S3_FORCE_PATH_STYLE", "false")
        ]),
        Some(false),
        "an explicit setting wins"
    );
    assert_eq!(path_style(&[("S3_FORCE_PATH_STYLE", "true")]), Some(true));
    assert_eq!(
        problems_for(&[
            ("S3_BUCKET", "bkt"),
            ("LOCAL_PATH", "."),
            ("S3_FORCE_PATH_STYLE", "sometimes")
        ]),
        vec!["S3_FORCE_PATH_STYLE"]
    );
}

/// Unset, `MAX_CONCURRENCY` is the ceiling of an adaptive number; set, it is the number.
#[test]
fn max_concurrency_fixes_the_number_or_is_the_ceiling() {
    let concurrency = |value: Option<&str>| {
        let mut v = vec![("S3_BUCKET", "bkt"), ("LOCAL_PATH", ".")];
        v.extend(value.map(|n| ("MAX_CONCURRENCY", n)));
        resolve(&v).map(|c| c.job.sync().map(|s| s.max_concurrency))
    };
    let table: &[(Option<&str>, Option<Concurrency>)] = &[
        (
            None,
            Some(Concurrency::Adaptive {
                ceiling: sync::DEFAULT_CEILING,
            }),
        ),
        (
            Some(""),
            Some(Concurrency::Adaptive {
                ceiling: sync::DEFAULT_CEILING,
            }),
        ),
        (Some("1"), Some(Concurrency::Fixed(1))),
        (Some("64"), Some(Concurrency::Fixed(64))),
        (Some("1024"), Some(Concurrency::Fixed(1024))),
        (Some("0"), None),
        (Some("1025"), None),
        (Some("lots"), None),
    ];
    for (value, want) in table {
        match want {
            Some(want) => assert_eq!(concurrency(*value), Ok(Some(*want)), "{value:?}"),
            None => assert_eq!(
                problems_for(&[
                    ("S3_BUCKET", "bkt"),
                    ("LOCAL_PATH", "."),
                    ("MAX_CONCURRENCY", value.unwrap_or_default())
                ]),
                vec!["MAX_CONCURRENCY"],
                "{value:?}"
            ),
        }
    }
    assert_eq!(Concurrency::Fixed(8).most(), 8);
    assert_eq!(Concurrency::Adaptive { ceiling: 256 }.most(), 256);
    // The adaptive start is below the ceiling, so that it has room to grow.
    const { assert!(sync::DEFAULT_CEILING > crate::s3::pace::INITIAL) };
}

#[test]
fn timeouts_from_variables_and_flags() {
    let base = [("S3_BUCKET", "bkt"), ("LOCAL_PATH", ".")];
    let with = |extra: &[(&str, &str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        resolve(&v)
    };
    let cfg = with(&[("READ_TIMEOUT", "5"), ("CONNECT_TIMEOUT", "0")]).expect("valid");
    assert_eq!(cfg.read_timeout, Some(std::time::Duration::from_secs(5)));
    assert_eq!(cfg.connect_timeout, Some(std::time::Duration::ZERO));
    let cfg = with(&[
        ("READ_TIMEOUT", "5"),
        ("EXTRA_ARGS", "--cli-read-timeout 7"),
    ])
    .expect("valid");
    assert_eq!(
        cfg.read_timeout,
        Some(std::time::Duration::from_secs(7)),
        "the aws-cli flag wins, as --region does"
    );
    let cfg = with(&[]).expect("valid");
    assert_eq!((cfg.read_timeout, cfg.connect_timeout), (None, None));
    for (var, value) in [
        ("READ_TIMEOUT", "30s"),
        ("CONNECT_TIMEOUT", "-1"),
        ("READ_TIMEOUT", "soon"),
    ] {
        let problems = with(&[(var, value)]).err().unwrap_or_default();
        assert_eq!(problems.len(), 1, "{var}={value}");
        assert_eq!(problems[0].variable, var);
        assert!(problems[0].message.contains("0 means no timeout"));
    }
    let problems = with(&[("SSL_CERT_FILE", "/no/such/ca.pem")])
        .err()
        .unwrap_or_default();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].variable, "SSL_CERT_FILE");
    assert!(
        problems[0]
            .message
            .contains("/no/such/ca.pem is not a readable file")
    );
}

#[test]
fn nothing_to_do() {
    assert_eq!(problems_for(&[]), vec!["S3_BUCKET"]);
}

#[test]
fn bucket_names() {
    for ok in ["abc", "my-bucket.example", "a1b2"] {
        assert_eq!(bucket_name_problem(ok), None, "{ok}");
    }
    for bad in [
        "ab",
        "MyBucket",
        "-abc",
        "abc-",
        "a..b",
        "192.168.1.1",
        "xn--abc",
        "a_b",
    ] {
        assert!(bucket_name_problem(bad).is_some(), "{bad}");
    }
}

#[test]
fn role_arns() {
    assert_eq!(
        role_arn_problem("arn:aws:iam::123456789012:role/deploy"),
        None
    );
    assert_eq!(
        role_arn_problem("arn:aws-cn:iam::123456789012:role/path/to/deploy"),
        None
    );
    for bad in [
        "deploy",
        "arn:aws:iam::12345:role/x",
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::123456789012:role/",
    ] {
        assert!(role_arn_problem(bad).is_some(), "{bad}");
    }
}

#[test]
fn expires_formats() {
    assert_eq!(
        parse_expires("2030-01-31T00:00:00Z").as_deref(),
        Some("Thu, 31 Jan 2030 00:00:00 GMT")
    );
    assert_eq!(
        parse_expires("Thu, 31 Jan 2030 00:00:00 GMT").as_deref(),
        Some("Thu, 31 Jan 2030 00:00:00 GMT")
    );
    assert_eq!(
        parse_expires("2030-01-31").as_deref(),
        Some("Thu, 31 Jan 2030 00:00:00 GMT")
    );
    assert_eq!(parse_expires("next tuesday"), None);
}

#[test]
fn five_invalid_values_all_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().to_str().expect("utf8");
    let mut got = problems_for(&[
        ("S3_BUCKET", "Bad_Bucket"),
        ("LOCAL_PATH", local),
        ("ACL", "world-writable"),
        ("STORAGE_CLASS", "CHEAP"),
        ("DELETE_FLAG", "maybe"),
        ("AWS_ROLE_SESSION_DURATION", "60"),
    ]);
    got.sort();
    assert_eq!(
        got,
        vec![
            "ACL",
            "AWS_ROLE_SESSION_DURATION",
            "DELETE_FLAG",
            "S3_BUCKET",
            "STORAGE_CLASS"
        ]
    );
}

#[test]
fn extra_args_parsed_like_aws_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().to_str().expect("utf8");
    let cfg = resolve(&[
        ("S3_BUCKET", "bucket/p"),
        ("LOCAL_PATH", local),
        ("CACHE_CONTROL", "max-age=1"),
        ("EXTRA_ARGS", "--delete --exclude '*.map' --include=a.map --cache-control 'no-cache' --metadata a=1,B=2 --sse --size-only --quiet"),
    ])
    .expect("valid");
    let sync = cfg.sync().cloned().expect("sync");
    assert!(sync.delete);
    assert_eq!(sync.compare, CompareMode::SizeOnly);
    assert_eq!(sync.headers.cache_control.as_deref(), Some("no-cache"));
    assert_eq!(sync.headers.sse.as_deref(), Some("AES256"));
    assert_eq!(
        sync.headers.metadata.get("b").map(String::as_str),
        Some("2")
    );
    assert_eq!(sync.filter_rules.len(), 2);
    assert_eq!(sync.verbosity, Verbosity::Quiet);
    assert_eq!(sync.prefix, "p/");
}

#[test]
fn extra_args_unknown_flag_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().to_str().expect("utf8");
    let errs = resolve(&[
        ("S3_BUCKET", "bucket"),
        ("LOCAL_PATH", local),
        ("EXTRA_ARGS", "--delte"),
    ])
    .expect_err("invalid");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.contains("--delte"), "{}", errs[0].message);
}

#[test]
fn extra_args_global_options_and_request_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().to_str().expect("utf8");
    let base = [("S3_BUCKET", "bucket"), ("LOCAL_PATH", local)];
    let with = |extra: &str| {
        let mut v = base.to_vec();
        v.push(("AWS_DEFAULT_REGION", "eu-west-1"));
        v.push(("EXTRA_ARGS", extra));
        resolve(&v)
    };
    let cfg = with("--region us-east-2 --debug --cli-read-timeout 0 --cli-connect-timeout=7 --profile ci --no-sign-request --page-size 2 --request-payer --grants read=id=a full=id=b read=id=c --checksum-algorithm SHA256 --expires 90 --sse-c --sse-c-key 0123456789abcdef0123456789abcdef").expect("valid");
    assert_eq!(cfg.region.as_deref(), Some("us-east-2"), "--region wins");
    assert!(cfg.debug);
    assert_eq!(cfg.read_timeout, Some(std::time::Duration::ZERO));
    assert_eq!(cfg.connect_timeout, Some(std::time::Duration::from_secs(7)));
    assert_eq!(cfg.profile.as_deref(), Some("ci"));
    assert!(matches!(cfg.credentials, CredentialSource::Anonymous));
    assert!(
        cfg.secrets
            .iter()
            .any(|s| s.expose() == "0123456789abcdef0123456789abcdef")
    );
    let sync = cfg.sync().cloned().expect("sync");
    let x = &sync.request_extras;
    assert_eq!(x.page_size, Some(2));
    assert!(x.request_payer);
    assert_eq!(
        x.grants,
        vec![
            ("x-amz-grant-full-control", "id=b".to_string()),
            ("x-amz-grant-read", "id=c".to_string())
        ],
        "one value per permission, the last"
    );
    assert_eq!(x.checksum_algorithm.as_deref(), Some("SHA256"));
    assert!(x.sse_c.is_some());
    assert_eq!(
        sync.compare,
        CompareMode::SizeAndMtime,
        "SSE-C ETags are not MD5s"
    );
    assert_eq!(
        sync.headers.expires.as_deref(),
        Some("Thu, 01 Jan 1970 00:01:30 GMT"),
        "botocore reads a number as seconds since 1970"
    );
    for (bad, var) in [
        ("--page-size 0", "EXTRA_ARGS --page-size"),
        ("--page-size 1001", "EXTRA_ARGS --page-size"),
        ("--grants write=id=a", "EXTRA_ARGS --grants"),
        (
            "--checksum-algorithm SHA512",
            "EXTRA_ARGS --checksum-algorithm",
        ),
        ("--sse-c", "EXTRA_ARGS --sse-c"),
        (
            "--sse-c-key 0123456789abcdef0123456789abcdef",
            "EXTRA_ARGS --sse-c-key",
        ),
        ("--sse-c --sse-c-key short", "EXTRA_ARGS --sse-c-key"),
        ("--cli-read-timeout soon", "EXTRA_ARGS --cli-read-timeout"),
        ("--endpoint-url localhost:9000", "EXTRA_ARGS --endpoint-url"),
        ("--ca-bundle /nonexistent/ca.pem", "EXTRA_ARGS --ca-bundle"),
        ("--region 'eu west'", "EXTRA_ARGS --region"),
    ] {
        let errs = with(bad).expect_err(bad);
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert_eq!(errs[0].variable, var, "{bad}");
        assert!(
            !errs[0].message.contains("short"),
            "{bad}: the key is never printed"
        );
    }
    let mut v = base.to_vec();
    v.push(("PRE_EXECUTION_SCRIPT", "setup.sh"));
    assert_eq!(problems_for(&v), vec!["PRE_EXECUTION_SCRIPT"]);
}

#[test]
fn list_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().to_str().expect("utf8");
    let cfg = resolve(&[
        ("S3_BUCKET", "bucket"),
        ("LOCAL_PATH", local),
        ("EXTRA_ARGS_COUNT", "2"),
        ("EXTRA_ARGS_0", "--exclude"),
        ("EXTRA_ARGS_1", "a b/*"),
        ("DISTRIBUTION_ID_COUNT", "2"),
        ("DISTRIBUTION_ID_0", "E1"),
        ("DISTRIBUTION_ID_1", "E2"),
        ("PATHS_COUNT", "1"),
        ("PATHS_0", "/a b.html"),
    ])
    .expect("valid");
    assert_eq!(
        cfg.sync().cloned().expect("sync").filter_rules[0].pattern,
        "a b/*"
    );
    let inv = cfg.invalidation.expect("inv");
    assert_eq!(inv.distribution_ids, vec!["E1", "E2"]);
    assert_eq!(inv.paths, PathsSpec::Explicit(vec!["/a b.html".into()]));
}

#[test]
fn invalidation_defaults() {
    let only = resolve(&[("DISTRIBUTION_ID", "E1, E2 E3")]).expect("valid");
    let inv = only.invalidation.expect("inv");
    assert_eq!(inv.distribution_ids.len(), 3);
    assert_eq!(inv.paths, PathsSpec::Explicit(vec!["/*".into()]));
    assert_eq!(
        problems_for(&[("DISTRIBUTION_ID", "e1")]),
        vec!["DISTRIBUTION_ID"]
    );
    assert_eq!(
        problems_for(&[("DISTRIBUTION_ID", "E1"), ("PATHS", "index.html /a*b")]),
        vec!["PATHS", "PATHS"]
    );
}

#[test]
fn oidc_without_token() {
    let errs = problems_for(&[
        ("DISTRIBUTION_ID", "E1"),
        ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
    ]);
    assert_eq!(errs, vec!["BITBUCKET_STEP_OIDC_TOKEN"]);
    let cfg = resolve(&[
        ("DISTRIBUTION_ID", "E1"),
        ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
        ("AWS_ACCESS_KEY_ID", "AKIA"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
    ])
    .expect("falls back to keys");
    assert!(matches!(
        cfg.credentials,
        CredentialSource::AccessKeys { .. }
    ));
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(cfg.secrets, vec![Secret::new("s3cr3t".into())]);
}

#[test]
fn not_a_jwt() {
    let errs = problems_for(&[
        ("DISTRIBUTION_ID", "E1"),
        ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
        ("BITBUCKET_STEP_OIDC_TOKEN", "not-a-jwt"),
    ]);
    assert_eq!(errs, vec!["BITBUCKET_STEP_OIDC_TOKEN"]);
}

#[test]
fn secrets_are_not_debug_printed() {
    let s = Secret::new("hunter2".into());
    assert_eq!(format!("{s:?} {s}"), "*** ***");
}
