//! Every byte verified (#15 item 1): each PutObject and UploadPart carries the Content-MD5 of
//! its body, and a body changed on the way (the fault proxy inverts a byte; moto, like some
//! stores, does not check Content-MD5 itself) is caught by the ETag check and sent again.

use crate::support::proxy::{Action, Match, Proxy, Recorded, Rule};
use crate::support::stage::{Checked, Stage};
use crate::support::*;
use base64::Engine;

fn key_is(key: &str) -> impl Fn(&Recorded) -> bool + '_ {
    move |r: &Recorded| r.s3_key().as_deref() == Some(key)
}

#[test]
fn every_upload_carries_the_content_md5_of_its_body() {
    let fx = Checked::on(Stage::new("md5"));
    run_pipe(&as_refs(&fx.vars())).assert_code(0);
    fx.assert_every_upload_carried_its_content_md5();
}

#[test]
fn a_body_changed_on_the_way_is_caught_and_sent_again() {
    let fx = Checked::on(Stage::new("flip"));
    fx.stage.proxy.set_rules(vec![
        Rule::new(
            Match::any().method("PUT").path_contains("a.css"),
            Action::CorruptBody,
        )
        .times(1),
        Rule::new(
            Match::any().method("PUT").path_contains("data.json"),
            Action::CorruptBody,
        )
        .times(1),
        Rule::new(
            Match::any().method("PUT").query_contains("partNumber=2"),
            Action::CorruptBody,
        )
        .times(1),
    ]);
    let run = run_pipe(&as_refs(&fx.vars()));
    run.assert_code(0)
        .assert_contains("the store holds other bytes than were sent for")
        .assert_contains("sending it again (attempt 2 of 3)");
    let url = fx.stage.s3();
    assert_eq!(get(&url, "flip", "a.css"), b"body { color: red }");
    assert_eq!(get(&url, "flip", "big.bin"), fx.big);
    let reqs = fx.stage.proxy.requests();
    assert_eq!(reqs.iter().filter(|r| key_is("a.css")(r)).count(), 2);
    assert_eq!(
        reqs.iter()
            .filter(|r| r.is_upload_part() && r.query_param("partNumber").as_deref() == Some("2"))
            .count(),
        2,
        "only the damaged part is sent again"
    );
    // A second run finds everything in place: nothing is uploaded.
    fx.stage.proxy.set_rules(vec![]);
    run_pipe(&as_refs(&fx.vars()))
        .assert_code(0)
        .assert_contains("0 uploaded");
}

#[test]
fn a_store_that_refuses_the_digest_gets_the_bytes_again() {
    let fx = Checked::on(Stage::new("digest"));
    fx.stage.proxy.set_rules(vec![
        Rule::new(
            Match::any().method("PUT").path_contains("index.html"),
            Action::s3_error(
                400,
                "BadDigest",
                "The Content-MD5 you specified did not match what was received.",
            ),
        )
        .times(1),
    ]);
    run_pipe(&as_refs(&fx.vars()))
        .assert_code(0)
        .assert_contains("they changed on the way (BadDigest");
    assert_eq!(get(&fx.stage.s3(), "digest", "index.html"), b"<h1>hi</h1>");
}

#[test]
fn bytes_that_keep_arriving_changed_fail_the_upload_and_nothing_is_deleted() {
    let fx = Checked::on(Stage::new("broken"));
    put(&fx.stage.s3(), "broken", "stale.js", b"old");
    fx.stage.proxy.set_rules(vec![
        Rule::new(
            Match::any().method("PUT").path_contains("a.css"),
            Action::CorruptBody,
        ),
        Rule::new(
            Match::any().method("PUT").query_contains("partNumber=1"),
            Action::CorruptBody,
        ),
    ]);
    let mut v = fx.vars();
    v.push(("DELETE_FLAG", "true".to_string()));
    let run = run_pipe(&as_refs(&v));
    run.assert_code(1)
        .assert_contains("the store keeps storing other bytes than were sent for")
        .assert_contains("a.css")
        .assert_contains("part 1 of 2 of");
    let keys = keys(&fx.stage.s3(), "broken");
    assert!(
        keys.contains(&"stale.js".to_string()),
        "no delete after a failed upload"
    );
    assert!(
        !keys.contains(&"big.bin".to_string()),
        "the multipart upload was aborted"
    );
    assert!(
        !keys.contains(&"index.html".to_string()),
        "HTML waits for the assets"
    );
}

/// `--checksum-algorithm SHA256` sends the checksum itself, as aws-cli does: on a PutObject,
/// on every UploadPart (with the multipart upload created with the algorithm), and in the
/// CompleteMultipartUpload's part list. Each value is checked against the file's bytes; real S3
/// refuses the algorithm without its value (#26 item 2).
#[test]
fn checksum_algorithm_sends_the_checksum_of_each_body_and_part() {
    use aws_smithy_checksums::ChecksumAlgorithm;
    let sha256 = |bytes: &[u8]| {
        let mut c = ChecksumAlgorithm::Sha256.into_impl();
        c.update(bytes);
        base64::engine::general_purpose::STANDARD.encode(c.finalize())
    };
    let moto = Moto::start();
    let url = moto.url();
    create_bucket(&url, "sums");
    let small = b"body { color: red }".to_vec();
    let big = deterministic_bytes(9 * 1024 * 1024, 3);
    let dir = site(&[("a.css", &small), ("big.bin", &big)]);
    let proxy = Proxy::start(&url);
    let mut v = key_vars(&proxy.url());
    v.push(("S3_BUCKET", "sums".into()));
    v.push(("LOCAL_PATH", dir.path().display().to_string()));
    v.push(("EXTRA_ARGS", "--checksum-algorithm SHA256".into()));
    let run = run_pipe(&as_refs(&v));
    run.assert_code(0);
    // moto, as AWS, answers with the checksum it checked: nothing to warn about (Ceph RGW
    // does not: test/ceph.rs).
    assert!(!run.all().contains("without confirming"), "{}", run.all());

    let puts = proxy.requests_where(|r| r.is_put_object());
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].header("x-amz-checksum-sha256"),
        Some(sha256(&small).as_str())
    );
    let creates = proxy.requests_where(|r| r.is_create_multipart_upload());
    assert_eq!(
        creates[0].header("x-amz-checksum-algorithm"),
        Some("SHA256")
    );
    let mut parts = proxy.requests_where(|r| r.is_upload_part());
    parts.sort_by_key(|r| r.query_param("partNumber"));
    let part_size = 8 * 1024 * 1024;
    let want: Vec<String> = big.chunks(part_size).map(sha256).collect();
    let got: Vec<&str> = parts
        .iter()
        .filter_map(|r| r.header("x-amz-checksum-sha256"))
        .collect();
    assert_eq!(got, want.iter().map(String::as_str).collect::<Vec<_>>());
    let complete = proxy.requests_where(|r| r.is_complete_multipart_upload());
    for w in &want {
        assert!(
            complete[0]
                .body_str()
                .contains(&format!("<ChecksumSHA256>{w}</ChecksumSHA256>")),
            "{}",
            complete[0].body_str()
        );
    }
    assert_eq!(get(&url, "sums", "big.bin"), big);
}
