//! CloudFront invalidation and the deploy report, against moto (through the recording proxy).

use crate::support::proxy::{Action, Match, Proxy, Rule};
use crate::support::*;

/// The environment of one scenario: moto, a proxy in front of it, a bucket and a distribution.
struct Fixture {
    moto: Moto,
    proxy: Proxy,
    distribution: String,
}

impl Fixture {
    fn new() -> Self {
        Self::with_moto(Moto::start())
    }
    fn with_moto(moto: Moto) -> Self {
        let proxy = Proxy::start(&moto.url());
        create_bucket(&moto.url(), "site");
        let distribution = create_distribution(&moto.url());
        Fixture {
            moto,
            proxy,
            distribution,
        }
    }
    fn vars(&self, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut v = key_vars(&self.proxy.url());
        v.push(("DISTRIBUTION_ID", self.distribution.clone()));
        v.extend(extra.iter().map(|(k, val)| (*k, val.to_string())));
        v
    }
    fn run(&self, extra: &[(&'static str, &str)]) -> Run {
        run_pipe(&as_refs(&self.vars(extra)))
    }
    fn invalidations(&self) -> Vec<Inv> {
        invalidations(&self.moto.url(), &self.distribution)
    }
    fn creates(&self) -> usize {
        self.proxy
            .requests()
            .iter()
            .filter(|r| r.is_create_invalidation())
            .count()
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn invalidation_only_run_defaults_to_everything() {
    let f = Fixture::new();
    f.run(&[]).assert_code(0).assert_contains("✔ Invalidation ");
    let invs = f.invalidations();
    assert_eq!(invs.len(), 1);
    assert_eq!(invs[0].paths, vec!["/*"]);
}

#[test]
fn explicit_paths_are_url_encoded_for_cloudfront() {
    let f = Fixture::new();
    let run = f.run(&[
        ("PATHS_COUNT", "3"),
        ("PATHS_0", "/a b.html"),
        ("PATHS_1", "/café/é.css"),
        ("PATHS_2", "/assets/*"),
    ]);
    run.assert_code(0).assert_contains(&format!(
        "console.aws.amazon.com/cloudfront/v4/home#/distributions/{}/invalidations/details/",
        f.distribution
    ));
    let invs = f.invalidations();
    assert_eq!(invs.len(), 1);
    assert_eq!(
        sorted(invs[0].paths.clone()),
        vec!["/a%20b.html", "/assets/*", "/caf%C3%A9/%C3%A9.css"]
    );
}

#[test]
fn changed_invalidates_exactly_what_the_sync_changed() {
    let f = Fixture::new();
    let dir = site(&[
        ("index.html", b"home"),
        ("a.css", b"a{}"),
        ("b.css", b"b{}"),
        ("docs/index.html", b"docs"),
        ("docs/guide.html", b"guide"),
    ]);
    let local = dir.path().display().to_string();
    f.run(&[("S3_BUCKET", "site"), ("LOCAL_PATH", &local)])
        .assert_code(0);
    // Change three files, one of them an index.html; the rest stays.
    write_files(
        dir.path(),
        &[
            ("a.css", b"a{color:red}"),
            ("docs/index.html", b"docs v2"),
            ("new.js", b"x"),
        ],
    );
    touch_all(dir.path(), 5);
    f.run(&[("S3_BUCKET", "site"), ("LOCAL_PATH", &local)])
        .assert_code(0);
    let invs = f.invalidations();
    assert_eq!(invs.len(), 2);
    let second = invs
        .iter()
        .find(|i| i.paths.contains(&"/new.js".to_string()))
        .expect("second invalidation");
    assert_eq!(
        sorted(second.paths.clone()),
        vec!["/a.css", "/docs", "/docs/", "/docs/index.html", "/new.js"]
    );
}

#[test]
fn a_prefix_maps_to_the_invalidation_prefix() {
    let f = Fixture::new();
    let dir = site(&[("x.css", b"x")]);
    let local = dir.path().display().to_string();
    f.run(&[("S3_BUCKET", "site/www"), ("LOCAL_PATH", &local)])
        .assert_code(0);
    assert_eq!(f.invalidations()[0].paths, vec!["/x.css"]);
    write_files(dir.path(), &[("x.css", b"xx")]);
    f.run(&[
        ("S3_BUCKET", "site/www"),
        ("LOCAL_PATH", &local),
        ("INVALIDATION_PREFIX", "/www"),
    ])
    .assert_code(0);
    assert!(
        f.invalidations()
            .iter()
            .any(|i| i.paths == vec!["/www/x.css"])
    );
}

#[test]
fn no_change_means_no_invalidation() {
    let f = Fixture::new();
    let dir = site(&[("index.html", b"home")]);
    let local = dir.path().display().to_string();
    f.run(&[("S3_BUCKET", "site"), ("LOCAL_PATH", &local)])
        .assert_code(0);
    touch_all(dir.path(), 5);
    f.proxy.clear_requests();
    f.run(&[("S3_BUCKET", "site"), ("LOCAL_PATH", &local)])
        .assert_code(0)
        .assert_contains("no CloudFront invalidation needed");
    assert_eq!(f.creates(), 0);
    assert_eq!(f.invalidations().len(), 1);
}

#[test]
fn many_changed_paths_collapse_into_wildcards() {
    let f = Fixture::new();
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("assets/{i}.js"), vec![b'x'; i + 1]))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let dir = site(&refs);
    write_files(dir.path(), &[("index.html", b"home")]);
    let local = dir.path().display().to_string();
    f.run(&[
        ("S3_BUCKET", "site"),
        ("LOCAL_PATH", &local),
        ("MAX_INVALIDATION_PATHS", "5"),
    ])
    .assert_code(0);
    assert_eq!(
        sorted(f.invalidations()[0].paths.clone()),
        vec!["/", "/assets/*", "/index.html"]
    );
}

#[test]
fn several_distributions_get_the_same_invalidation() {
    let f = Fixture::new();
    let second = create_distribution(&f.moto.url());
    let ids = format!("{}, {second}", f.distribution);
    let url = f.proxy.url();
    let mut vars = key_vars(&url);
    vars.push(("DISTRIBUTION_ID", ids));
    vars.push(("PATHS", "/a /b".into()));
    run_pipe(&as_refs(&vars)).assert_code(0);
    let one = invalidations(&f.moto.url(), &f.distribution);
    let two = invalidations(&f.moto.url(), &second);
    assert_eq!(one.len(), 1);
    assert_eq!(two.len(), 1);
    assert_eq!(one[0].paths, two[0].paths);
}

#[test]
fn wait_polls_until_completed() {
    let f = Fixture::with_moto(Moto::start_with(&[(
        "MOTO_INVALIDATION_IN_PROGRESS_READS",
        "4",
    )]));
    f.run(&[("WAIT", "true")])
        .assert_code(0)
        .assert_contains("Waiting for invalidation")
        .assert_contains("InProgress")
        .assert_contains("completed");
    let gets = f
        .proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/invalidation/"))
        .count();
    assert!(gets >= 2, "polled {gets} times");
}

#[test]
fn wait_timeout_fails_naming_the_invalidation() {
    let f = Fixture::with_moto(Moto::start_with(&[(
        "MOTO_INVALIDATION_IN_PROGRESS_READS",
        "100000",
    )]));
    let run = f.run(&[("WAIT", "true"), ("WAIT_TIMEOUT", "1")]);
    run.assert_code(1);
    let inv = f.invalidations().pop().expect("created");
    run.assert_contains(&format!(
        "invalidation {} on {} did not complete within 1 s",
        inv.id, f.distribution
    ));
}

#[test]
fn a_retried_step_reuses_the_caller_reference_and_gets_the_same_invalidation() {
    let f = Fixture::new();
    let first = f.run(&[("PATHS", "/x"), ("BITBUCKET_BUILD_NUMBER", "42")]);
    first.assert_code(0);
    let again = f.run(&[("PATHS", "/x"), ("BITBUCKET_BUILD_NUMBER", "42")]);
    again.assert_code(0);
    let refs: Vec<String> = f
        .proxy
        .requests()
        .iter()
        .filter(|r| r.is_create_invalidation())
        .map(|r| {
            let body = r.body_str();
            let start = body.find("<CallerReference>").expect("ref") + "<CallerReference>".len();
            let end = body.find("</CallerReference>").expect("ref end");
            body[start..end].to_string()
        })
        .collect();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0], refs[1]);
    assert!(refs[0].contains("build-42"), "{}", refs[0]);
    assert_eq!(
        f.invalidations().len(),
        1,
        "CloudFront returned the existing invalidation"
    );
    f.run(&[("PATHS", "/x"), ("BITBUCKET_BUILD_NUMBER", "43")])
        .assert_code(0);
    assert_eq!(
        f.invalidations().len(),
        2,
        "a new build makes a new invalidation"
    );
}

#[test]
fn dry_run_prints_and_creates_nothing() {
    let f = Fixture::new();
    let dir = site(&[("a.css", b"a")]);
    let local = dir.path().display().to_string();
    f.run(&[
        ("S3_BUCKET", "site"),
        ("LOCAL_PATH", &local),
        ("DRY_RUN", "true"),
    ])
    .assert_code(0)
    .assert_contains(&format!("(dryrun) invalidate: {} /a.css", f.distribution));
    assert_eq!(f.creates(), 0);
    assert!(f.invalidations().is_empty());
}

#[test]
fn no_such_distribution_is_explained() {
    let f = Fixture::new();
    let url = f.proxy.url();
    let mut vars = key_vars(&url);
    vars.push(("DISTRIBUTION_ID", "ENOSUCHDIST1".into()));
    run_pipe(&as_refs(&vars)).assert_code(1).assert_contains(
        "✖ CloudFront distribution ENOSUCHDIST1 does not exist: check DISTRIBUTION_ID",
    );
}

#[test]
fn access_denied_names_the_permissions() {
    let f = Fixture::new();
    f.proxy.set_rules(vec![Rule::new(
        Match::any().method("POST").path_contains("/invalidation"),
        Action::cloudfront_error(403, "AccessDenied", "User is not authorized"),
    )]);
    f.run(&[("WAIT", "true")])
        .assert_code(1)
        .assert_contains("cloudfront:CreateInvalidation and cloudfront:GetInvalidation")
        .assert_contains(&format!("distribution/{}", f.distribution));
}

#[test]
fn too_many_invalidations_in_progress_is_retried() {
    let f = Fixture::new();
    f.proxy.set_rules(vec![
        Rule::new(
            Match::any().method("POST").path_contains("/invalidation"),
            Action::cloudfront_error(400, "TooManyInvalidationsInProgress", "Processing your request will cause you to exceed the maximum number of in-progress wildcard invalidations."),
        )
        .times(1),
    ]);
    f.run(&[]).assert_code(0).assert_contains("✔ Invalidation ");
    assert_eq!(f.creates(), 2);
    assert_eq!(f.invalidations().len(), 1);
}

#[test]
fn the_report_describes_the_run() {
    let f = Fixture::new();
    put(&f.moto.url(), "site", "old.js", b"old");
    let dir = site(&[("index.html", b"home"), ("a.css", b"a")]);
    let local = dir.path().display().to_string();
    let shared = tempfile::tempdir().expect("tmp");
    let shared_dir = shared.path().display().to_string();
    f.run(&[
        ("S3_BUCKET", "site"),
        ("LOCAL_PATH", &local),
        ("DELETE_FLAG", "true"),
        ("BITBUCKET_PIPE_SHARED_STORAGE_DIR", &shared_dir),
    ])
    .assert_code(0);
    let path = shared.path().join("s3-deploy-pipe").join("report.json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("report written")).expect("json");
    assert_eq!(report["schema"], 3);
    assert_eq!(report["error"], serde_json::Value::Null);
    assert_eq!(report["pipe_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["success"], true);
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["dry_run"], false);
    let sync = &report["sync"];
    assert_eq!(sync["target"], "s3://site/");
    assert_eq!(sync["counts"]["uploaded"], 2);
    assert_eq!(sync["counts"]["deleted"], 1);
    assert_eq!(sync["bytes"], 5);
    assert_eq!(sync["uploaded"], serde_json::json!(["a.css", "index.html"]));
    assert_eq!(sync["deleted"], serde_json::json!(["old.js"]));
    let inv = &report["invalidations"][0];
    assert_eq!(inv["distribution_id"], f.distribution.as_str());
    let id = inv["invalidation_id"].as_str().expect("id");
    assert_eq!(f.invalidations()[0].id, id);
    assert_eq!(
        inv["paths"],
        serde_json::json!(["/", "/a.css", "/index.html", "/old.js"])
    );

    // REPORT_FILE outside Bitbucket.
    let file = shared.path().join("r.json");
    f.run(&[
        ("PATHS", "/x"),
        ("REPORT_FILE", &file.display().to_string()),
    ])
    .assert_code(0);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("written")).expect("json");
    assert!(r["sync"].is_null());
    assert_eq!(r["invalidations"][0]["paths"], serde_json::json!(["/x"]));
}
