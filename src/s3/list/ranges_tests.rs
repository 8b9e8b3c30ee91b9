//! The listing in ranges against a store simulated in memory, with ListObjectsV2's semantics
//! (prefix, StartAfter, continuation tokens, pages), and against stores that answer otherwise:
//! its result is always the sequential listing's, or the answers are caught as inconsistent.

use std::cmp::Ordering;

use super::*;

/// How a simulated store departs from S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quirk {
    /// None: S3 as documented.
    S3,
    /// Lists from the first key whatever StartAfter says.
    IgnoresStartAfter,
    /// Sorts by UTF-16 code units (as a store backed by Java or JavaScript strings may):
    /// U+E000..U+FFFF after the supplementary planes.
    Utf16Order,
    /// Sorts case-insensitively.
    CaseInsensitiveOrder,
    /// Answers a continuation token with the same token again.
    RepeatsToken,
    /// Says a page is truncated without a continuation token.
    TruncatedWithoutToken,
}

struct Store {
    /// In the store's own order.
    keys: Vec<String>,
    page: usize,
    quirk: Quirk,
}

impl Store {
    fn new<S: AsRef<str>>(keys: &[S], page: usize, quirk: Quirk) -> Store {
        let mut keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_string()).collect();
        keys.sort();
        keys.dedup();
        let mut store = Store {
            keys,
            page: page.max(1),
            quirk,
        };
        let mut keys = std::mem::take(&mut store.keys);
        keys.sort_by(|a, b| store.order(a, b));
        store.keys = keys;
        store
    }

    fn order(&self, a: &str, b: &str) -> Ordering {
        match self.quirk {
            Quirk::Utf16Order => a.encode_utf16().cmp(b.encode_utf16()),
            Quirk::CaseInsensitiveOrder => a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)),
            _ => a.cmp(b),
        }
    }

    /// One ListObjectsV2 answer: the keys, IsTruncated, NextContinuationToken. The token
    /// is the last key listed (S3's is opaque; it also resumes after the last key listed).
    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> (Vec<String>, Option<bool>, Option<String>) {
        let from = match (token, start_after) {
            (Some(t), _) => t.strip_prefix("after:").map(str::to_string),
            (None, Some(_)) if self.quirk == Quirk::IgnoresStartAfter => None,
            (None, s) => s.map(str::to_string),
        };
        let mut rest = self.keys.iter().filter(|k| {
            k.starts_with(prefix)
                && from
                    .as_deref()
                    .is_none_or(|f| self.order(k, f) == Ordering::Greater)
        });
        let keys: Vec<String> = rest.by_ref().take(self.page).cloned().collect();
        let truncated = rest.next().is_some();
        let next = match (truncated, self.quirk) {
            (false, _) | (true, Quirk::TruncatedWithoutToken) => None,
            (true, Quirk::RepeatsToken) if token.is_some() => token.map(str::to_string),
            (true, _) => keys.last().map(|k| format!("after:{k}")),
        };
        (keys, Some(truncated), next)
    }
}

/// What the plan would get from a listed key (the production filter: the prefix itself,
/// folder markers and the state's keys left out).
fn kept(key: &str, prefix: &str, state_prefix: &str) -> Option<String> {
    let object = aws_sdk_s3::types::Object::builder().key(key).build();
    super::super::remote_object(&object, prefix, state_prefix).map(|o| o.rel)
}

/// The sequential listing, as `current` lists (the SDK's paginator: on while there is a new
/// token), sorted.
fn sequential(store: &Store, prefix: &str, state_prefix: &str) -> Vec<String> {
    let (mut out, mut token) = (Vec::new(), None::<String>);
    loop {
        let (keys, _, next) = store.list(prefix, None, token.as_deref());
        out.extend(keys.iter().filter_map(|k| kept(k, prefix, state_prefix)));
        match next.filter(|t| !t.is_empty()) {
            Some(t) if Some(&t) != token.as_ref() => token = Some(t),
            _ => break,
        }
    }
    out.sort();
    out
}

/// Every key the store holds below `prefix`, as the plan would get them, sorted: what a
/// listing must return.
fn truth(store: &Store, prefix: &str, state_prefix: &str) -> Vec<String> {
    let mut all: Vec<String> = store
        .keys
        .iter()
        .filter(|k| k.starts_with(prefix))
        .filter_map(|k| kept(k, prefix, state_prefix))
        .collect();
    all.sort();
    all
}

/// The listing in the ranges of `split`, as `in_ranges` and `list_range` list them (one range
/// after another here: the order in which ranges are read changes nothing).
fn in_ranges(
    store: &Store,
    split: &Split,
    prefix: &str,
    state_prefix: &str,
) -> Result<Vec<String>, Inconsistent> {
    let ranges = split.ranges();
    let (mut out, mut edges) = (Vec::new(), Vec::new());
    for range in &ranges {
        let mut reader = Reader::new(prefix, range);
        let mut token = None;
        loop {
            let (keys, truncated, next) =
                store.list(prefix, reader.start_after(), token.as_deref());
            for k in &keys {
                if reader.key(k)?
                    && let Some(rel) = kept(k, prefix, state_prefix)
                {
                    out.push(rel);
                }
            }
            match reader.page_end(truncated, next.as_deref())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        edges.push(reader.finish());
    }
    check_seams(&edges, &ranges)?;
    Ok(out)
}

/// The keys of the table: overlapping names, folder markers, `//`, keys sorting between
/// folders, unicode on both sides of UTF-16's disagreement with UTF-8, the state.
const TRICKY: &[&str] = &[
    "a",
    "a-b",
    "a.b",
    "a/",
    "a/b",
    "a/b/c",
    "a//b",
    "a0",
    "a~",
    "b",
    "b/index.html",
    "b0/x",
    "c/",
    "c/d",
    "old/1",
    "old/2",
    "old/deep/3",
    "z/é",
    "é",
    "\u{e000}",
    "\u{e000}/x",
    "😀",
    "😀/x",
    "A",
    "B/x",
    ".s3-deploy-pipe/state.json",
    ".s3-deploy-pipe/releases/1-x.json.gz",
    "sub/.s3-deploy-pipe/state.json",
];

/// Local trees over the table's keys: the same keys, some removed (old/, the root files), some
/// new, none.
fn local_trees(remote: &[String], prefix: &str) -> Vec<Vec<String>> {
    let rels: Vec<String> = remote
        .iter()
        .filter_map(|k| k.strip_prefix(prefix))
        .filter(|r| !r.is_empty() && !r.ends_with('/'))
        .map(str::to_string)
        .collect();
    let without_old: Vec<String> = rels
        .iter()
        .filter(|r| !r.starts_with("old/"))
        .cloned()
        .collect();
    let folders_only: Vec<String> = rels.iter().filter(|r| r.contains('/')).cloned().collect();
    let new: Vec<String> = ["a/new", "aa", "n/1", "n/2", "zz", "😀/y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mixed: Vec<String> = folders_only.iter().chain(&new).cloned().collect();
    vec![rels, without_old, folders_only, new, mixed, Vec::new()]
}

/// The table's remote key sets: at the bucket's root (prefix "") and below `site/`, with keys
/// around the prefix that are not below it.
fn remotes() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let root: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();
    let mut site: Vec<String> = TRICKY.iter().map(|k| format!("site/{k}")).collect();
    site.extend(
        ["sit", "site", "site0/x", "site-b", "sitf/a", "site/"]
            .iter()
            .map(|s| s.to_string()),
    );
    site.push("site/.s3-deploy-pipe/state.json".into());
    vec![
        ("", ".s3-deploy-pipe/", root),
        ("site/", "site/.s3-deploy-pipe/", site),
    ]
}

#[test]
fn ranges_list_exactly_what_one_sequential_listing_lists() {
    let mut compared = 0;
    for (prefix, state_prefix, remote) in remotes() {
        for local in local_trees(&remote, prefix) {
            for per_range in 1..=4 {
                for page in [1, 2, 3, 1000] {
                    let store = Store::new(&remote, page, Quirk::S3);
                    let split =
                        Split::sized(prefix, local.iter().map(String::as_str), per_range, 4);
                    let want = sequential(&store, prefix, state_prefix);
                    assert_eq!(want, truth(&store, prefix, state_prefix));
                    assert_eq!(
                        in_ranges(&store, &split, prefix, state_prefix),
                        Ok(want.clone()),
                        "prefix {prefix:?}, local {local:?}, {per_range} per range, pages of {page}"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 2 * 6 * 4 * 4);
    // The table means something: the state's keys and the markers are left out, the
    // keys around the prefix too, and the removed folder's keys are listed.
    let (prefix, state_prefix, remote) = &remotes()[1];
    let listed = sequential(&Store::new(remote, 2, Quirk::S3), prefix, state_prefix);
    assert!(listed.contains(&"old/deep/3".to_string()) && listed.contains(&"a//b".to_string()));
    assert!(
        !listed
            .iter()
            .any(|k| k.contains(".s3-deploy-pipe") || k.ends_with('/'))
    );
    assert_eq!(listed.len(), TRICKY.len() - 2 - 3, "{listed:?}");
}

#[test]
fn split_ranges_are_even_sorted_and_cover_every_key() {
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("f/{:05}", (i * 7919) % 10_000))
        .collect();
    // One page or less: one range, the sequential listing.
    assert_eq!(
        Split::from_local(
            "p/",
            keys[..PAGE_KEYS - 1].iter().map(String::as_str),
            PAGE_KEYS,
            8
        )
        .ranges()
        .len(),
        1
    );
    assert_eq!(
        Split::from_local("p/", std::iter::empty(), PAGE_KEYS, 8)
            .ranges()
            .len(),
        1
    );
    let split = Split::from_local("p/", keys.iter().map(String::as_str), PAGE_KEYS, 8);
    let ranges = split.ranges();
    assert_eq!(ranges.len(), 10_000usize.div_ceil(PAGE_KEYS - 1));
    assert_eq!(split.concurrency(), 8);
    assert_eq!(ranges[0].after, None);
    assert_eq!(ranges.last().map(|r| &r.to), Some(&None));
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].to, pair[1].after);
    }
    // Bounds are full keys, sorted, and the ranges hold 909 or 910 local keys each.
    let mut sorted = keys.clone();
    sorted.sort();
    for r in &ranges {
        let n = sorted
            .iter()
            .filter(|k| {
                let full = format!("p/{k}");
                r.after.as_ref().is_none_or(|a| &full > a)
                    && r.to.as_ref().is_none_or(|t| &full <= t)
            })
            .count();
        assert!((909..=910).contains(&n), "{r:?} holds {n}");
    }
    // A redeploy of 100,000 files: 101 ranges, one request each.
    let many: Vec<String> = (0..100_000).map(|i| format!("{i:06}")).collect();
    assert_eq!(
        Split::from_local("", many.iter().map(String::as_str), PAGE_KEYS, 64)
            .ranges()
            .len(),
        101
    );
}

#[test]
fn directory_buckets_are_listed_in_one_sequence() {
    assert!(!lists_in_ranges("site--usw2-az1--x-s3"));
    assert!(lists_in_ranges("site"));
    assert!(lists_in_ranges("x-s3-site"));
}

#[test]
fn a_range_is_read_until_the_first_key_past_its_end() {
    // Keys a..j, the range (b, e]: a page of 3 ends at e exactly: one more page is read,
    // whose first key (f) is the next range's start.
    let keys: Vec<String> = "abcdefghij".chars().map(String::from).collect();
    let store = Store::new(&keys, 3, Quirk::S3);
    let range = Range {
        after: Some("b".into()),
        to: Some("e".into()),
    };
    let mut reader = Reader::new("", &range);
    let (mut kept, mut pages, mut token) = (Vec::new(), 0, None);
    loop {
        let (page, truncated, next) = store.list("", reader.start_after(), token.as_deref());
        pages += 1;
        for k in &page {
            if reader.key(k).expect("S3's answer") {
                kept.push(k.clone());
            }
        }
        match reader
            .page_end(truncated, next.as_deref())
            .expect("S3's answer")
        {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(kept, ["c", "d", "e"]);
    assert_eq!(pages, 2);
    assert_eq!(
        reader.finish(),
        Edge {
            first: Some("c".into()),
            ending: Ending::Past("f".into())
        }
    );
}

#[test]
fn answers_s3_would_not_give_are_caught() {
    let range = Range {
        after: Some("p/b".into()),
        to: Some("p/m".into()),
    };
    let mut reader = Reader::new("p/", &range);
    assert!(matches!(
        reader.key("q/c"),
        Err(Inconsistent::OutsidePrefix { .. })
    ));
    assert!(matches!(
        reader.key("p/b"),
        Err(Inconsistent::NotAfter { .. })
    ));
    assert_eq!(reader.key("p/d"), Ok(true));
    assert!(matches!(
        reader.key("p/c"),
        Err(Inconsistent::NotSorted { .. })
    ));
    assert_eq!(
        reader.page_end(Some(true), Some("t1")),
        Ok(Some("t1".into()))
    );
    assert_eq!(
        reader.page_end(Some(true), Some("t1")),
        Err(Inconsistent::TokenRepeated)
    );
    assert_eq!(
        reader.page_end(Some(true), None),
        Err(Inconsistent::TruncatedWithoutToken)
    );
    // Seams: the key past a range must begin the next; an ended listing, an empty next range.
    let ranges = Split {
        bounds: vec!["p/m".into()],
        concurrency: 2,
    }
    .ranges();
    let edge = |first: Option<&str>, ending: Ending| Edge {
        first: first.map(String::from),
        ending,
    };
    let past = |k: &str| Ending::Past(k.into());
    assert_eq!(
        check_seams(
            &[
                edge(Some("p/a"), past("p/n")),
                edge(Some("p/n"), Ending::End)
            ],
            &ranges
        ),
        Ok(())
    );
    assert_eq!(
        check_seams(
            &[edge(Some("p/a"), Ending::End), edge(None, Ending::End)],
            &ranges
        ),
        Ok(())
    );
    assert!(
        check_seams(
            &[
                edge(Some("p/a"), past("p/n")),
                edge(Some("p/o"), Ending::End)
            ],
            &ranges
        )
        .is_err()
    );
    assert!(
        check_seams(
            &[edge(Some("p/a"), past("p/n")), edge(None, Ending::End)],
            &ranges
        )
        .is_err()
    );
    assert!(
        check_seams(
            &[
                edge(Some("p/a"), Ending::End),
                edge(Some("p/n"), Ending::End)
            ],
            &ranges
        )
        .is_err()
    );
}

/// Stores that are not S3: the listing in ranges is every key they hold, or caught (the
/// caller then lists sequentially, as before). Each quirk is caught in some case of the
/// table: the checks are what keeps the result exact. (The sequential listing of a store
/// that repeats a token or truncates without one stops early, as the SDK's paginator does.)
#[test]
fn stores_that_answer_otherwise_are_listed_exactly_or_caught() {
    for quirk in [
        Quirk::IgnoresStartAfter,
        Quirk::Utf16Order,
        Quirk::CaseInsensitiveOrder,
        Quirk::RepeatsToken,
        Quirk::TruncatedWithoutToken,
    ] {
        let mut caught = 0;
        for (prefix, state_prefix, remote) in remotes() {
            for local in local_trees(&remote, prefix) {
                for per_range in 1..=3 {
                    for page in [1, 2, 5] {
                        let store = Store::new(&remote, page, quirk);
                        let split =
                            Split::sized(prefix, local.iter().map(String::as_str), per_range, 4);
                        match in_ranges(&store, &split, prefix, state_prefix) {
                            Ok(got) => assert_eq!(
                                got,
                                truth(&store, prefix, state_prefix),
                                "{quirk:?}, prefix {prefix:?}, local {local:?}, {per_range} per range, pages of {page}"
                            ),
                            Err(_) => caught += 1,
                        }
                    }
                }
            }
        }
        assert!(caught > 0, "{quirk:?} was never caught");
    }
}

/// Random key sets over an alphabet that makes overlapping names, random local trees, range
/// and page sizes: the listing in ranges equals the sequential listing on S3, and on the
/// quirky stores is every key they hold, or caught.
#[test]
fn ranges_equal_the_sequential_listing_for_random_key_sets() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
    let part = prop_oneof![
        Just("a"),
        Just("b"),
        Just("/"),
        Just("-"),
        Just("."),
        Just("A"),
        Just("é"),
        Just("\u{e000}"),
        Just("😀"),
        Just(".s3-deploy-pipe/"),
    ];
    let key = proptest::collection::vec(part, 0..5).prop_map(|p| p.concat());
    let keys = proptest::collection::vec(key, 0..40);
    let quirk = prop_oneof![
        4 => Just(Quirk::S3),
        1 => Just(Quirk::IgnoresStartAfter),
        1 => Just(Quirk::Utf16Order),
        1 => Just(Quirk::CaseInsensitiveOrder),
        1 => Just(Quirk::RepeatsToken),
        1 => Just(Quirk::TruncatedWithoutToken),
    ];
    let prefix = prop_oneof![Just(""), Just("a/"), Just("😀/")];
    let case = (keys.clone(), keys, prefix, 1..6usize, 1..6usize, quirk);
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases: 512,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[27; 32]),
    );
    runner
        .run(&case, |(remote, local, prefix, per_range, page, quirk)| {
            let remote: Vec<String> = remote.iter().map(|k| format!("{prefix}{k}")).collect();
            let state_prefix = format!("{prefix}.s3-deploy-pipe/");
            let store = Store::new(&remote, page, quirk);
            let split = Split::sized(prefix, local.iter().map(String::as_str), per_range, 3);
            let want = truth(&store, prefix, &state_prefix);
            if quirk == Quirk::S3 {
                prop_assert_eq!(&sequential(&store, prefix, &state_prefix), &want);
            }
            match in_ranges(&store, &split, prefix, &state_prefix) {
                Ok(got) => prop_assert_eq!(got, want),
                Err(e) => prop_assert!(quirk != Quirk::S3, "S3 caught as inconsistent: {}", e),
            }
            Ok(())
        })
        .expect("ranges equal the listing");
}
