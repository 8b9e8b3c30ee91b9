//! Foundation: variables, exit codes, OIDC credentials and their diagnostics, secrets.

use crate::support::proxy::{Action, Match, Proxy, Rule};
use crate::support::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/BitbucketDeploy";

fn token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 3600)
        .unwrap_or(0);
    s3_deploy_pipe::jwt::make_test_token(&format!(
        r#"{{"iss":"https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc","aud":"ari:cloud:bitbucket::workspace/0000-1111","sub":"{{repo-uuid}}:{{step-uuid}}","exp":{exp}}}"#
    ))
}

#[test]
fn no_variables_exits_2_and_names_what_is_missing() {
    let run = run_pipe(&[]);
    run.assert_code(2)
        .assert_contains("✖ S3_BUCKET")
        .assert_contains("DISTRIBUTION_ID");
}

#[test]
fn five_invalid_values_are_all_named_and_nothing_is_requested() {
    let proxy = Proxy::start("http://127.0.0.1:9");
    let dir = site(&[("index.html", b"hi")]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("S3_BUCKET", "Upper_Case".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
        ("ACL", "world".to_string()),
        ("STORAGE_CLASS", "CHEAP".to_string()),
        ("DELETE_FLAG", "perhaps".to_string()),
        ("AWS_ROLE_SESSION_DURATION", "10".to_string()),
    ]);
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(2);
    for var in [
        "S3_BUCKET",
        "ACL",
        "STORAGE_CLASS",
        "DELETE_FLAG",
        "AWS_ROLE_SESSION_DURATION",
    ] {
        run.assert_contains(&format!("✖ {var}:"));
    }
    assert!(proxy.requests().is_empty(), "no request may be made");
}

#[test]
fn oidc_role_arn_without_token_tells_to_add_oidc_true() {
    let run = run_pipe(&[("DISTRIBUTION_ID", "E1"), ("AWS_OIDC_ROLE_ARN", ROLE)]);
    run.assert_code(2).assert_contains("oidc: true");
}

#[test]
fn a_token_that_is_not_a_jwt_is_a_config_error() {
    let proxy = Proxy::start("http://127.0.0.1:9");
    let run = run_pipe(&[
        ("DISTRIBUTION_ID", "E1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", &proxy.url()),
        ("AWS_OIDC_ROLE_ARN", ROLE),
        ("BITBUCKET_STEP_OIDC_TOKEN", "definitely-not-a-jwt"),
    ]);
    run.assert_code(2)
        .assert_contains("✖ BITBUCKET_STEP_OIDC_TOKEN: is not a JWT");
    assert!(proxy.requests().is_empty());
    assert!(!run.all().contains("definitely-not-a-jwt"));
}

#[test]
fn oidc_happy_path_exchanges_the_token_and_signs_with_the_temporary_key() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "oidc-bucket");
    let dir = site(&[("index.html", b"<h1>hi</h1>")]);
    let token = token();
    let run = run_pipe(&[
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", &proxy.url()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_OIDC_ROLE_ARN", ROLE),
        ("BITBUCKET_STEP_OIDC_TOKEN", &token),
        ("BITBUCKET_REPO_SLUG", "my-site"),
        ("BITBUCKET_BUILD_NUMBER", "77"),
        ("S3_BUCKET", "oidc-bucket"),
        ("LOCAL_PATH", &dir.path().display().to_string()),
    ]);
    run.assert_code(0)
        .assert_contains("Assumed role arn:aws:sts::123456789012:assumed-role/BitbucketDeploy/bitbucket-my-site-77")
        .assert_contains("credentials expire at");

    let reqs = proxy.requests();
    let sts: Vec<_> = reqs.iter().filter(|r| r.is_sts()).collect();
    assert_eq!(sts.len(), 1, "exactly one STS call");
    let form = sts[0].body_str();
    assert!(form.contains("Action=AssumeRoleWithWebIdentity"), "{form}");
    assert!(
        form.contains(&format!("WebIdentityToken={token}")),
        "token sent as is"
    );
    assert!(
        form.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FBitbucketDeploy"),
        "{form}"
    );
    assert!(
        form.contains("RoleSessionName=bitbucket-my-site-77"),
        "{form}"
    );
    assert!(form.contains("DurationSeconds=3600"), "{form}");
    let sts_xml = String::from_utf8_lossy(&sts[0].response_body).to_string();
    let issued = xml_value(&sts_xml, "AccessKeyId").expect("STS issued a key");

    let after: Vec<_> = reqs.iter().filter(|r| !r.is_sts()).collect();
    assert!(!after.is_empty(), "S3 calls follow");
    for r in &after {
        assert_eq!(
            r.access_key.as_deref(),
            Some(issued.as_str()),
            "{} {}",
            r.method,
            r.path
        );
    }
    assert_eq!(keys(&moto.url(), "oidc-bucket"), vec!["index.html"]);
}

#[test]
fn each_sts_refusal_is_explained_claim_by_claim() {
    let proxy = Proxy::start("http://127.0.0.1:9");
    let token = token();
    let cases = [
        (
            "InvalidIdentityToken",
            "Incorrect token audience",
            "must list the token's aud as its audience",
        ),
        (
            "InvalidIdentityToken",
            "No OpenIDConnect provider found in your account for https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
            "provider URL is the token's iss without \"https://\": api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
        ),
        (
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            "role ARNs are case-sensitive",
        ),
        (
            "ExpiredTokenException",
            "Token expired: current date/time must be before the expiration date/time",
            "re-run the step",
        ),
        (
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider",
            "signing keys",
        ),
        (
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            "AWS_ROLE_SESSION_DURATION",
        ),
    ];
    for (code, message, fix) in cases {
        proxy.set_rules(vec![Rule::new(
            Match::any().body_contains("Action=AssumeRoleWithWebIdentity"),
            Action::sts_error(400, code, message),
        )]);
        let run = run_pipe(&[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &proxy.url()),
            ("AWS_OIDC_ROLE_ARN", ROLE),
            ("BITBUCKET_STEP_OIDC_TOKEN", &token),
            ("DISTRIBUTION_ID", "E1"),
        ]);
        run.assert_code(1)
            .assert_contains(&format!(
                "✖ STS refused AssumeRoleWithWebIdentity for {ROLE}: {code}"
            ))
            .assert_contains("aud: ari:cloud:bitbucket::workspace/0000-1111")
            .assert_contains("sub: {repo-uuid}:{step-uuid}")
            .assert_contains(
                "iss: https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
            )
            .assert_contains("valid for")
            .assert_contains(fix);
        assert!(!run.all().contains(&token));
    }
}

#[test]
fn access_keys_are_used_when_oidc_token_is_missing_with_a_warning() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "keys-bucket");
    let dir = site(&[("a.txt", b"a")]);
    let mut vars = key_vars(&proxy.url());
    vars.extend([
        ("AWS_OIDC_ROLE_ARN", ROLE.to_string()),
        ("S3_BUCKET", "keys-bucket".to_string()),
        ("LOCAL_PATH", dir.path().display().to_string()),
    ]);
    let run = run_pipe(&as_refs(&vars));
    run.assert_code(0).assert_contains(
        "WARNING: AWS_OIDC_ROLE_ARN is set but BITBUCKET_STEP_OIDC_TOKEN is missing",
    );
    let reqs = proxy.requests();
    assert!(reqs.iter().all(|r| !r.is_sts()));
    assert!(
        reqs.iter()
            .all(|r| r.access_key.as_deref() == Some(ACCESS_KEY))
    );
}

#[test]
fn missing_region_is_a_clear_config_error() {
    let run = run_pipe(&[("DISTRIBUTION_ID", "E1")]);
    run.assert_code(2)
        .assert_contains("✖ AWS_DEFAULT_REGION is not set");
}

#[test]
fn no_secret_reaches_the_output_even_with_debug() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    create_bucket(&moto.url(), "secret-bucket");
    let dir = site(&[("index.html", b"<p>x</p>"), ("app.js", b"x=1")]);
    let token = token();
    let local = dir.path().display().to_string();
    let base = [
        ("DEBUG", "true"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_OIDC_ROLE_ARN", ROLE),
        ("BITBUCKET_STEP_OIDC_TOKEN", token.as_str()),
        ("S3_BUCKET", "secret-bucket"),
        ("LOCAL_PATH", local.as_str()),
    ];
    let url = proxy.url();
    let mut ok_vars = base.to_vec();
    ok_vars.push(("AWS_ENDPOINT_URL", &url));
    let ok = run_pipe(&ok_vars);
    ok.assert_code(0);
    assert!(
        ok.all().contains("DEBUG"),
        "debug tracing is on:\n{}",
        ok.all()
    );
    let sts_xml = proxy
        .requests()
        .iter()
        .find(|r| r.is_sts())
        .map(|r| String::from_utf8_lossy(&r.response_body).to_string())
        .expect("sts call");
    let issued_secret = xml_value(&sts_xml, "SecretAccessKey").expect("secret");
    let issued_session = xml_value(&sts_xml, "SessionToken").expect("session token");

    // A failing run: STS refuses.
    proxy.set_rules(vec![Rule::new(
        Match::any().body_contains("Action=AssumeRoleWithWebIdentity"),
        Action::sts_error(
            403,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ),
    )]);
    let failed = run_pipe(&ok_vars);
    failed.assert_code(1);

    // A run with static keys and a session token, failing on S3.
    let session = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789abcdef";
    let mut key_run_vars = key_vars(&url);
    key_run_vars.extend([
        ("AWS_SESSION_TOKEN", session.to_string()),
        ("DEBUG", "true".to_string()),
        ("S3_BUCKET", "no-such-bucket".to_string()),
        ("LOCAL_PATH", local.clone()),
    ]);
    let keyed = run_pipe(&as_refs(&key_run_vars));
    keyed.assert_code(1);

    let all = format!("{}\n{}\n{}", ok.all(), failed.all(), keyed.all());
    let mut forbidden = vec![
        token.clone(),
        issued_secret,
        issued_session,
        SECRET_KEY.to_string(),
        session.to_string(),
    ];
    // Any 17-character window of the token.
    let bytes = token.as_bytes();
    for i in 0..bytes.len().saturating_sub(16) {
        forbidden.push(String::from_utf8_lossy(&bytes[i..i + 17]).to_string());
    }
    for f in &forbidden {
        assert!(
            !all.contains(f.as_str()),
            "secret {f:?} leaked into the output"
        );
    }
}
