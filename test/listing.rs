//! The prefix's listing in ranges (issue 27): a tree of more than one page of files is listed as
//! several ranges at once (ListObjectsV2 with different StartAfter keys, in flight together),
//! and the deploy is the one a sequential listing gives: nothing re-uploaded, exactly the keys
//! with no local file deleted. A store whose answers break the ranges' checks is listed
//! sequentially, with one INFO line. The exactness of the ranges, key by key, is the table and
//! property tests of `src/s3/list/ranges_tests.rs`.

use std::path::Path;

use crate::support::proxy::{Action, Gate, Match, Proxy, Recorded, Rule};
use crate::support::*;

/// Folders named to sort around each other (`-` < `.` < `/` < `0` < `~`), one non-ASCII.
const FOLDERS: &[&str] = &["a", "a-b", "a.b", "b", "é"];
/// Files per folder: 5 × 520 + 3 root files = 2,603 files, three ranges of 868 or 867.
const PER_FOLDER: usize = 520;
const BUCKET: &str = "ranges";

/// The local tree: [`FOLDERS`] of [`PER_FOLDER`] small files each, and root files that sort
/// between the folders.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for folder in FOLDERS {
        std::fs::create_dir(dir.path().join(folder)).expect("mkdir");
        for i in 0..PER_FOLDER {
            let rel = format!("{folder}/f{i:04}.txt");
            std::fs::write(dir.path().join(&rel), rel.as_bytes()).expect("write");
        }
    }
    for root in ["a0", "a~", "index.html"] {
        std::fs::write(dir.path().join(root), root.as_bytes()).expect("write");
    }
    dir
}

/// Keys below `site/` with no local file: a removed folder, a key inside a local folder, keys
/// between folders and files, `//`, an emoji; a "folder" marker (never deleted); a key of the
/// reserved `.s3-deploy-pipe` name (never deleted); keys beside the prefix (never touched).
const GONE: &[&str] = &[
    "site/old/1",
    "site/old/2",
    "site/old/deep/3",
    "site/a.b/zz-extra",
    "site/a//b",
    "site/a0.5",
    "site/a/f0100.txt/x",
    "site/😀",
];
const KEPT: &[&str] = &[
    "site/a/",
    "site/sub/.s3-deploy-pipe/x",
    "site-b/x",
    "sitf",
    "sit",
];

/// Moto behind a recording proxy, the tree deployed to `site/`, and the keys with no local
/// file put beside it.
fn deployed(dir: &Path) -> (Moto, Proxy) {
    let moto = Moto::start();
    create_bucket(&moto.url(), BUCKET);
    let proxy = Proxy::start(&moto.url());
    deploy(&proxy, dir, &[]).assert_code(0);
    for key in GONE.iter().chain(KEPT) {
        put(&moto.url(), BUCKET, key, b"remote only");
    }
    (moto, proxy)
}

fn vars(proxy: &Proxy, dir: &Path) -> Vec<(&'static str, String)> {
    let mut vars = key_vars(&proxy.url());
    vars.push(("S3_BUCKET", format!("{BUCKET}/site")));
    vars.push(("LOCAL_PATH", dir.display().to_string()));
    vars.push(("DELETE_FLAG", "true".to_string()));
    vars
}

fn deploy(proxy: &Proxy, dir: &Path, extra: &[(&str, &str)]) -> Run {
    proxy.clear_requests();
    let vars = vars(proxy, dir);
    let mut all = as_refs(&vars);
    all.extend_from_slice(extra);
    run_pipe(&all)
}

fn listing() -> Match {
    Match::any().method("GET").query_contains("list-type=2")
}

/// The redeploy's outcome: no file re-uploaded (every key was listed, with its ETag), every
/// key with no local file deleted, markers, reserved keys and keys beside the prefix kept.
fn assert_redeployed(moto: &Moto, proxy: &Proxy, dir: &Path) {
    let puts = proxy.requests_where(Recorded::is_put_object);
    assert!(
        puts.is_empty(),
        "re-uploaded: {:?}",
        puts.first().map(|r| r.decoded_path())
    );
    let keys = all_keys(&moto.url(), BUCKET);
    for gone in GONE {
        assert!(!keys.contains(&gone.to_string()), "{gone} was not deleted");
    }
    for kept in KEPT {
        assert!(keys.contains(&kept.to_string()), "{kept} was deleted");
    }
    let site: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("site/") && !KEPT.contains(&k.as_str()))
        .filter(|k| !k.contains(".s3-deploy-pipe/"))
        .collect();
    assert_eq!(
        site.len(),
        FOLDERS.len() * PER_FOLDER + 3,
        "{:?}",
        &site[..5]
    );
    assert!(dir.join("é/f0519.txt").exists() && keys.contains(&"site/é/f0519.txt".to_string()));
}

#[test]
fn a_large_tree_is_listed_in_ranges_at_once_and_deploys_as_a_sequential_listing_would() {
    let dir = tree();
    let (moto, proxy) = deployed(dir.path());
    // Every listing request waits at the gate: the redeploy goes on only once three are
    // there together (a listing one page after another would never send the second).
    let gate = Gate::new();
    proxy.set_rules(vec![Rule::new(listing(), Action::Hold(gate.clone()))]);
    proxy.clear_requests();
    let child = std::thread::spawn({
        let (url, path) = (proxy.url(), dir.path().to_path_buf());
        move || {
            let mut vars = key_vars(&url);
            vars.push(("S3_BUCKET", format!("{BUCKET}/site")));
            vars.push(("LOCAL_PATH", path.display().to_string()));
            vars.push(("DELETE_FLAG", "true".to_string()));
            run_pipe(&as_refs(&vars))
        }
    });
    gate.wait_arrivals(3);
    gate.release(usize::MAX);
    let run = child.join().expect("pipe thread");
    run.assert_code(0).assert_contains("8 to delete");
    assert!(!run.all().contains("one sequence"), "{}", run.all());

    let lists = proxy.requests_where(|r| listing().matches(r));
    let mut starts: Vec<Option<String>> =
        lists.iter().map(|r| r.query_param("start-after")).collect();
    starts.sort();
    starts.dedup();
    assert_eq!(starts.len(), 3, "one request per range: {starts:?}");
    assert_eq!(starts[0], None, "the first range starts at the prefix");
    for start in starts.iter().flatten() {
        assert!(start.starts_with("site/"), "{start}");
    }
    assert!(
        lists
            .iter()
            .all(|r| r.query_param("prefix").as_deref() == Some("site/"))
    );
    assert_redeployed(&moto, &proxy, dir.path());
}

#[test]
fn stores_that_ignore_or_refuse_start_after_are_listed_in_one_sequence_instead() {
    let dir = tree();
    let (moto, proxy) = deployed(dir.path());
    // A store that lists from the first key whatever StartAfter says: an answer S3 would
    // not give to a range's request (its first key is not after StartAfter).
    let from_the_start = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>{BUCKET}</Name>\
         <Prefix>site/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
         <Contents><Key>site/a-b/f0000.txt</Key><Size>14</Size><ETag>&quot;x&quot;</ETag>\
         <LastModified>2024-01-01T00:00:00.000Z</LastModified></Contents></ListBucketResult>"
    );
    let ignores = Action::Respond {
        status: 200,
        content_type: "application/xml".to_string(),
        body: from_the_start,
    };
    let refuses = Action::s3_error(501, "NotImplemented", "StartAfter is not implemented");
    for (store, answer) in [("ignores", ignores), ("refuses", refuses)] {
        for key in GONE {
            put(&moto.url(), BUCKET, key, b"remote only");
        }
        proxy.set_rules(vec![Rule::new(
            listing().query_contains("start-after="),
            answer,
        )]);
        let run = deploy(&proxy, dir.path(), &[]);
        run.assert_code(0)
            .assert_contains("listing s3://ranges/site/ in one sequence instead")
            .assert_contains("8 to delete");
        assert!(
            proxy.fired()[0] >= 1,
            "a store that {store} StartAfter: no range was answered so"
        );
        assert_redeployed(&moto, &proxy, dir.path());
    }
}
