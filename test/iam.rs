//! IAM permissions (#29): a refusal names the action and resource the refused operation
//! needs, as `src/iam.rs`'s table (the one the README's policies come from) says.

use crate::support::proxy::{Action, Match, Proxy, Rule};
use crate::support::*;

/// A versioned bucket with two releases of `site/`, deployed through nothing but moto.
fn two_releases(url: &str, bucket: &str) {
    create_bucket(url, bucket);
    enable_versioning(url, bucket);
    for (build, body) in [("1", b"one"), ("2", b"two")] {
        let dir = site(&[("index.html", body)]);
        let mut vars = key_vars(url);
        vars.extend([
            ("S3_BUCKET", format!("{bucket}/site")),
            ("LOCAL_PATH", dir.path().display().to_string()),
            ("BITBUCKET_BUILD_NUMBER", build.to_string()),
        ]);
        run_pipe(&as_refs(&vars)).assert_code(0);
    }
}

fn rollback_vars(endpoint: &str, bucket: &str) -> Vec<(&'static str, String)> {
    let mut vars = key_vars(endpoint);
    vars.extend([
        ("S3_BUCKET", format!("{bucket}/site")),
        ("ROLLBACK", "previous".to_string()),
    ]);
    vars
}

/// ListObjectVersions needs s3:ListBucketVersions, not the s3:ListBucket of ListObjectsV2.
#[test]
fn a_refused_listing_of_versions_names_s3_list_bucket_versions() {
    let moto = Moto::start();
    two_releases(&moto.url(), "vbkt");
    let proxy = Proxy::start(&moto.url());
    proxy.set_rules(vec![Rule::new(
        Match::any().method("GET").query_contains("versions"),
        Action::s3_error(403, "AccessDenied", "Access Denied"),
    )]);
    run_pipe(&as_refs(&rollback_vars(&proxy.url(), "vbkt")))
        .assert_code(1)
        .assert_contains(
            "access denied listing the bucket's versions (AccessDenied: Access Denied): allow s3:ListBucketVersions on arn:aws:s3:::vbkt",
        );
    assert_eq!(get(&moto.url(), "vbkt", "site/index.html"), b"two");
}

/// A restore copies an earlier version: the refusal names s3:GetObjectVersion with the
/// CopyObject actions, on the key.
#[test]
fn a_refused_restore_names_s3_get_object_version() {
    let moto = Moto::start();
    two_releases(&moto.url(), "rbkt");
    let proxy = Proxy::start(&moto.url());
    proxy.set_rules(vec![Rule::new(
        Match::any()
            .method("PUT")
            .header_contains("x-amz-copy-source", "versionId"),
        Action::s3_error(403, "AccessDenied", "Access Denied"),
    )]);
    run_pipe(&as_refs(&rollback_vars(&proxy.url(), "rbkt")))
        .assert_code(1)
        .assert_contains(
            "allow s3:GetObject and s3:PutObject on arn:aws:s3:::rbkt/site/index.html, and s3:GetObjectVersion to copy an earlier version of the key (a rollback)",
        );
    assert_eq!(get(&moto.url(), "rbkt", "site/index.html"), b"two");
}
