//! The release suite's helpers, on any store: deploys of a site to `bucket/site`, the release
//! state they keep there, and scenarios that more than one store runs (moto, Ceph RGW).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::proxy::{Action, Gate, Match, Proxy, Rule};
use super::*;

pub const STATE: &str = "site/.s3-deploy-pipe/state.json";

/// The variables of a deploy of `dir` to `bucket/site` with deletes on.
pub fn deploy_vars(
    endpoint: &str,
    bucket: &str,
    dir: &Path,
    build: &str,
) -> Vec<(&'static str, String)> {
    let mut v = key_vars(endpoint);
    v.push(("S3_BUCKET", format!("{bucket}/site")));
    v.push(("LOCAL_PATH", dir.display().to_string()));
    v.push(("DELETE_FLAG", "true".into()));
    v.push(("BITBUCKET_BUILD_NUMBER", build.into()));
    v.push(("BITBUCKET_COMMIT", format!("commit{build}abcdef0123456789")));
    v
}

pub fn with(
    mut v: Vec<(&'static str, String)>,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    for (k, val) in extra {
        v.retain(|(name, _)| name != k);
        v.push((k, val.to_string()));
    }
    v
}

/// Run a deploy of `dir` to `bucket/site` (deletes on) with `extra` variables on top.
pub fn deploy(
    endpoint: &str,
    bucket: &str,
    dir: &Path,
    build: &str,
    extra: &[(&'static str, &str)],
) -> Run {
    run_pipe(&as_refs(&with(
        deploy_vars(endpoint, bucket, dir, build),
        extra,
    )))
}

pub fn state(endpoint: &str, bucket: &str) -> serde_json::Value {
    serde_json::from_slice(&get(endpoint, bucket, STATE)).expect("state.json is JSON")
}

pub fn stale_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    state(endpoint, bucket)["stale"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Move the time a stale key became stale back by `secs`, as a test's way of letting time pass.
pub fn age_stale(endpoint: &str, bucket: &str, key: &str, secs: i64) {
    let mut s = state(endpoint, bucket);
    let since = s["stale"][key].as_i64().expect("key is stale");
    s["stale"][key] = serde_json::json!(since - secs);
    put(
        endpoint,
        bucket,
        STATE,
        &serde_json::to_vec(&s).expect("json"),
    );
}

/// Objects and headers of the site (state left out), for comparing two buckets.
pub fn snapshot(
    endpoint: &str,
    bucket: &str,
) -> BTreeMap<String, (Vec<u8>, BTreeMap<String, String>)> {
    keys(endpoint, bucket)
        .into_iter()
        .map(|k| {
            let rel = k.strip_prefix("site/").unwrap_or(&k).to_string();
            let mut h = headers_of(endpoint, bucket, &k);
            // A restored copy is a new version with a new date; ETags are compared (content).
            h.remove("last-modified");
            (rel, (get(endpoint, bucket, &k), h))
        })
        .collect()
}

/// The ids of the releases in the state, in its order.
pub fn release_ids(endpoint: &str, bucket: &str) -> Vec<String> {
    state(endpoint, bucket)["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Two first deploys of `bucket/site` at once through `proxy` (builds 1 and 2), in the order
/// that a store which ignores `If-None-Match: *` makes dangerous: both read "no state", both
/// write `state.json` (one after the other), and both read it back only after both wrote.
pub fn two_first_deploys_at_once(proxy: &Proxy, bucket: &str) -> (Run, Run) {
    let reads = Gate::new();
    let writes = Gate::new();
    let state = || Match::any().path_contains("state.json");
    proxy.set_rules(vec![
        // Both read "no state"; both read back only after both wrote.
        Rule::new(state().method("GET"), Action::Hold(reads.clone())).times(4),
        Rule::new(state().method("PUT"), Action::Hold(writes.clone())).times(2),
    ]);
    let a = site(&[("index.html", b"a"), ("a.js", b"a")]);
    let b = site(&[("index.html", b"b"), ("b.js", b"b")]);
    let vars = |dir: &Path, build: &str| {
        let mut v = key_vars(&proxy.url());
        v.push(("S3_BUCKET", format!("{bucket}/site")));
        v.push(("LOCAL_PATH", dir.display().to_string()));
        v.push(("BITBUCKET_BUILD_NUMBER", build.to_string()));
        v
    };
    let (va, vb) = (vars(a.path(), "1"), vars(b.path(), "2"));
    let put_done = || {
        proxy
            .requests_where(|r| {
                r.method == "PUT" && r.path.ends_with("state.json") && r.status == 200
            })
            .len()
    };
    let run = |o: std::process::Output| Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| pipe_command(&as_refs(&va), None).output().expect("run a"));
        let hb = s.spawn(|| pipe_command(&as_refs(&vb), None).output().expect("run b"));
        reads.wait_arrivals(2);
        reads.release(2);
        writes.wait_arrivals(2);
        writes.release(1);
        let deadline = Instant::now() + Duration::from_secs(60);
        while put_done() < 1 {
            assert!(
                Instant::now() < deadline,
                "the first state write never ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        writes.release(2);
        reads.wait_arrivals(4);
        reads.release(4);
        (ha.join().expect("thread"), hb.join().expect("thread"))
    });
    proxy.clear_rules();
    (run(ra), run(rb))
}
