//! Against a real Ceph RGW (Debian's 16.2, started once for this binary by `test/ceph/start`;
//! issue #26): the pipe on a store that is not AWS. Each test deploys to a bucket of its own on
//! the shared cluster, through the recording proxy where requests count.

use std::path::Path;

use crate::support::ceph::Ceph;
use crate::support::proxy::{Proxy, Recorded};
use crate::support::*;

/// A small site: one file of each kind whose Content-Type the pipe sets from the extension.
const SITE: &[(&str, &[u8])] = &[
    ("index.html", b"<h1>on ceph</h1>"),
    ("css/site.css", b"h1{color:teal}"),
    ("js/app.js", b"console.log('rgw')"),
    (
        "img/logo.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    ),
    ("data.json", b"{\"store\":\"rgw\"}"),
];

/// The variables of a deploy of `dir` to `bucket` through `endpoint`.
fn deploy_vars(endpoint: &str, bucket: &str, dir: &Path) -> Vec<(&'static str, String)> {
    let mut v = key_vars(endpoint);
    v.push(("S3_BUCKET", bucket.to_string()));
    v.push(("LOCAL_PATH", dir.display().to_string()));
    v.push(("DELETE_FLAG", "true".into()));
    v
}

#[test]
fn a_site_deployed_to_rgw_has_its_bytes_and_content_types_and_a_redeploy_uploads_nothing() {
    let ceph = Ceph::get();
    let bucket = ceph.bucket("smoke");
    let proxy = Proxy::start(&ceph.url());
    let dir = site(SITE);
    let vars = deploy_vars(&proxy.url(), &bucket, dir.path());

    run_pipe(&as_refs(&vars))
        .assert_code(0)
        .assert_contains("Plan: 5 to upload, 0 to re-header, 0 unchanged, 0 to delete");
    let mut want: Vec<String> = SITE.iter().map(|(k, _)| k.to_string()).collect();
    want.sort();
    assert_eq!(keys(&ceph.url(), &bucket), want);
    for (key, body) in SITE {
        assert_eq!(get(&ceph.url(), &bucket, key), *body, "bytes of {key}");
        let h = headers_of(&ceph.url(), &bucket, key);
        assert_eq!(h.get("etag"), Some(&local_md5(body)), "ETag of {key}");
    }
    let content_type = |key: &str| {
        headers_of(&ceph.url(), &bucket, key)
            .get("content-type")
            .cloned()
    };
    assert_eq!(content_type("index.html").as_deref(), Some("text/html"));
    assert_eq!(content_type("css/site.css").as_deref(), Some("text/css"));
    assert_eq!(
        content_type("js/app.js").as_deref(),
        Some("text/javascript")
    );
    assert_eq!(
        content_type("img/logo.svg").as_deref(),
        Some("image/svg+xml")
    );
    assert_eq!(
        content_type("data.json").as_deref(),
        Some("application/json")
    );
    let before = list(&ceph.url(), &bucket);

    proxy.clear_requests();
    run_pipe(&as_refs(&vars))
        .assert_code(0)
        .assert_contains("Plan: 0 to upload, 0 to re-header, 5 unchanged, 0 to delete");
    let writes = proxy.requests_where(|r| {
        r.is_put_object()
            || r.is_copy_object()
            || r.is_create_multipart_upload()
            || r.is_delete_object()
            || r.is_delete_objects()
    });
    assert!(writes.is_empty(), "an unchanged redeploy wrote: {writes:?}");
    assert!(
        proxy.requests().iter().any(Recorded::is_list_objects),
        "the redeploy did not list the bucket through the proxy"
    );
    assert_eq!(list(&ceph.url(), &bucket), before);
}
