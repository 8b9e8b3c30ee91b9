//! Untrusted inputs (#25): the release state in the bucket is read as input. A state that names
//! keys the pipe never writes is refused before anything is written, by a deploy, a rollback
//! and a release list alike, and the scoped writer never sends a write outside the deployed
//! prefix and the state prefix.

use crate::support::proxy::{Proxy, Recorded};
use crate::support::*;

const STATE: &str = "site/.s3-deploy-pipe/state.json";

fn vars(endpoint: &str, dir: &std::path::Path, build: &str) -> Vec<(&'static str, String)> {
    let mut v = key_vars(endpoint);
    v.push(("S3_BUCKET", "tamper/site".into()));
    v.push(("LOCAL_PATH", dir.display().to_string()));
    v.push(("DELETE_FLAG", "true".into()));
    v.push(("RELEASE_HISTORY", "1".into()));
    v.push(("BITBUCKET_BUILD_NUMBER", build.into()));
    v
}

fn is_write(r: &Recorded) -> bool {
    r.is_put_object()
        || r.is_upload_part()
        || r.is_copy_object()
        || r.is_delete_objects()
        || r.is_delete_object()
        || r.is_create_multipart_upload()
        || r.is_complete_multipart_upload()
}

/// A `state.json` whose releases name, as their manifests, a key outside the prefix, a live
/// key of the site and another site's state: today's trim would have deleted them all.
#[test]
fn a_state_naming_foreign_keys_is_refused_before_anything_is_written() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "tamper");
    // Versioned, so that a rollback gets as far as reading the state.
    block_on(
        s3(&url)
            .put_bucket_versioning()
            .bucket("tamper")
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send(),
    )
    .expect("enable versioning");
    put(&url, "tamper", "other/secret.txt", b"secret");
    put(&url, "tamper", "other/.s3-deploy-pipe/state.json", b"{}");
    let a = site(&[("index.html", b"A"), ("a.css", b"a")]);
    run_pipe(&as_refs(&vars(&url, a.path(), "1"))).assert_code(0);

    let mut state: serde_json::Value =
        serde_json::from_slice(&get(&url, "tamper", STATE)).expect("state.json");
    let real = state["releases"][0].clone();
    let releases = state["releases"].as_array_mut().expect("releases");
    for (i, victim) in [
        "other/secret.txt",
        "site/index.html",
        "other/.s3-deploy-pipe/state.json",
    ]
    .iter()
    .enumerate()
    {
        let mut r = real.clone();
        r["id"] = serde_json::json!(format!("fake{i}"));
        r["manifest"] = serde_json::json!(victim);
        releases.insert(0, r);
    }
    let tampered = serde_json::to_vec(&state).expect("json");
    put(&url, "tamper", STATE, &tampered);

    let proxy = Proxy::start(&url);
    let b = site(&[("index.html", b"B"), ("b.css", b"b")]);
    let run = run_pipe(&as_refs(&vars(&proxy.url(), b.path(), "2")));
    run.assert_code(1)
        .assert_contains("is not a release state this pipe wrote for this prefix")
        .assert_contains("other/.s3-deploy-pipe/state.json");
    assert!(!run.all().contains("Synced to"), "{}", run.all());
    let writes: Vec<String> = proxy
        .requests_where(is_write)
        .iter()
        .map(|r| format!("{} {}", r.method, r.decoded_path()))
        .collect();
    assert!(writes.is_empty(), "writes sent: {writes:?}");
    assert_eq!(get(&url, "tamper", "other/secret.txt"), b"secret");
    assert_eq!(
        get(&url, "tamper", "other/.s3-deploy-pipe/state.json"),
        b"{}"
    );
    assert_eq!(get(&url, "tamper", "site/index.html"), b"A");
    assert_eq!(
        get(&url, "tamper", STATE),
        tampered,
        "the state is left as it was"
    );

    // A rollback and a release list read the same state: refused too, with the reason.
    for extra in [("ROLLBACK", "previous"), ("RELEASES", "list")] {
        proxy.clear_requests();
        let mut v = vars(&proxy.url(), b.path(), "3");
        v.push((extra.0, extra.1.into()));
        run_pipe(&as_refs(&v))
            .assert_code(1)
            .assert_contains("is not a release state this pipe wrote for this prefix");
        assert!(proxy.requests_where(is_write).is_empty(), "{extra:?}");
    }
    assert_eq!(get(&url, "tamper", "other/secret.txt"), b"secret");
}

/// A state written for another prefix (two sites sharing one STATE_PREFIX) is refused: its
/// stale keys and releases are another site's.
#[test]
fn a_state_of_another_prefix_is_refused() {
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "tamper");
    let a = site(&[("index.html", b"A")]);
    let mut v = vars(&url, a.path(), "1");
    v.push(("STATE_PREFIX", "shared-state/".into()));
    run_pipe(&as_refs(&v)).assert_code(0);
    let mut other = vars(&url, a.path(), "2");
    other.retain(|(k, _)| *k != "S3_BUCKET");
    other.push(("S3_BUCKET", "tamper/other-site".into()));
    other.push(("STATE_PREFIX", "shared-state/".into()));
    run_pipe(&as_refs(&other))
        .assert_code(1)
        .assert_contains("it is the state of prefix \"site/\", not of \"other-site/\"");
    let written: Vec<String> = all_keys(&url, "tamper")
        .into_iter()
        .filter(|k| k.starts_with("other-site/"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}
