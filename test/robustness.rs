//! No value of any pipe variable crashes the pipe (#15): the process ends with 0, 1 or 2 and a
//! readable line, never a panic (exit 101, or 134 with `panic = "abort"` in the image).

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use support::proxy::{Action, Match, Proxy, Rule};
use support::*;

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
            let run = run_pipe(&refs);
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
