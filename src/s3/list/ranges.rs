//! The prefix's listing in ranges of the key space, listed at once: where the ranges split
//! (from the local tree), and the checks that make their union exactly one sequential listing.
//!
//! A range is the keys after one key (ListObjectsV2's `StartAfter`, exclusive) up to the next
//! range's start (inclusive). S3 lists keys in UTF-8 byte order, which is `str`'s order: the
//! ranges partition the prefix's keys, and their listings, one after another, are the
//! sequential listing. The local tree is the map: a redeploy's bucket holds about the local
//! keys, so ranges of a page of local keys are one request each ([`PAGE_KEYS`]).
//!
//! A store that is not S3 may answer otherwise (ignore `StartAfter`, sort in another order,
//! repeat a continuation token). [`Reader`] checks every key a range lists and every seam
//! between two ranges (the first key past a range must be the next range's first key);
//! an answer that breaks them is [`Inconsistent`], and the caller lists the prefix
//! sequentially instead. A listing in ranges that passes the checks is the store's own
//! sequential listing even when the store sorts in another order or ignores `StartAfter`
//! (the argument is in [`check_seams`]'s doc).

/// Keys in one ListObjectsV2 page: S3's default and largest MaxKeys ("returns up to 1,000
/// key names", ListObjectsV2 API reference), unless EXTRA_ARGS `--page-size` sets fewer.
///
/// A range holds one page less one of the local tree's keys: one page then holds the range's
/// keys and the first key past it, which proves where the next range starts (see
/// [`check_seams`]). A redeploy thus lists each range in one request: 100,000 files are 101
/// requests, `MAX_CONCURRENCY` of them at once, instead of 100 one after another.
pub(crate) const PAGE_KEYS: usize = 1000;

/// Where the listing splits: full keys, sorted and distinct, and how many ranges are listed at
/// once. No bounds: one range, the sequential listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Split {
    bounds: Vec<String>,
    concurrency: usize,
}

/// One range: the keys after `after` (all keys when `None`), up to and including `to` (no
/// end when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) after: Option<String>,
    pub(crate) to: Option<String>,
}

impl Split {
    /// One range: the prefix listed sequentially (a rollback).
    pub(crate) fn none() -> Split {
        Split::default()
    }

    /// Ranges of at most `page_keys - 1` of the local tree's keys (`rels`, relative to
    /// `prefix`, in any order; `page_keys`: the keys in a listed page, see [`PAGE_KEYS`]),
    /// `concurrency` of them listed at once. A tree of fewer keys than a page is one range,
    /// listed as before: one request lists it when the bucket holds about the same keys.
    pub(crate) fn from_local<'a>(
        prefix: &str,
        rels: impl IntoIterator<Item = &'a str>,
        page_keys: usize,
        concurrency: usize,
    ) -> Split {
        Split::sized(prefix, rels, page_keys.saturating_sub(1), concurrency)
    }

    /// [`Split::from_local`] with ranges of at most `per_range` local keys.
    fn sized<'a>(
        prefix: &str,
        rels: impl IntoIterator<Item = &'a str>,
        per_range: usize,
        concurrency: usize,
    ) -> Split {
        let mut rels: Vec<&str> = rels.into_iter().collect();
        if !rels.is_sorted() {
            rels.sort_unstable();
        }
        rels.dedup();
        let n = rels.len();
        let count = n.div_ceil(per_range.max(1)).max(1);
        // Range j ends at local key ceil((j+1)·n/count) - 1: sizes differ by at most one.
        let bounds = (1..count)
            .map(|j| format!("{prefix}{}", rels[(j * n).div_ceil(count) - 1]))
            .collect();
        Split {
            bounds,
            concurrency: concurrency.max(1),
        }
    }

    /// How many ranges are listed at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency.max(1)
    }

    /// The ranges, in key order: together, every key.
    pub(crate) fn ranges(&self) -> Vec<Range> {
        let mut after = None;
        let mut ranges = Vec::with_capacity(self.bounds.len() + 1);
        for b in &self.bounds {
            ranges.push(Range {
                after: after.replace(b.clone()),
                to: Some(b.clone()),
            });
        }
        ranges.push(Range { after, to: None });
        ranges
    }
}

/// Whether S3 can list this bucket in ranges: not a directory bucket (S3 Express One Zone,
/// named `<base>--<zone-id>--x-s3`), which supports no StartAfter and does not list keys in
/// order (ListObjectsV2 API reference).
pub(crate) fn lists_in_ranges(bucket: &str) -> bool {
    !bucket.ends_with("--x-s3")
}

/// An answer S3 would not give: the listing in ranges is not used (the prefix is listed
/// sequentially).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Inconsistent {
    #[error("it listed {key:?}, which is not below the prefix")]
    OutsidePrefix { key: String },
    #[error("it listed {key:?} when asked for the keys after {after:?}")]
    NotAfter { key: String, after: String },
    #[error("it listed {key:?} after {previous:?}, out of order")]
    NotSorted { key: String, previous: String },
    #[error("it refused a request with StartAfter: {code}")]
    StartAfterRefused { code: String },
    #[error("it gave the same continuation token twice")]
    TokenRepeated,
    #[error("it said a page was truncated but gave no continuation token")]
    TruncatedWithoutToken,
    #[error("the keys after {bound:?} begin at {found:?} in one page and at {next:?} in another")]
    Seam {
        bound: String,
        found: Option<String>,
        next: Option<String>,
    },
}

/// How a range's listing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The first key listed past the range's end.
    Past(String),
    /// The listing said there are no more keys.
    End,
}

/// What a read range tells about its neighbours: its first key and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) first: Option<String>,
    pub(crate) ending: Ending,
}

/// Reads one range's pages: every key listed goes through [`Reader::key`], every page's end
/// through [`Reader::page_end`].
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    prefix: &'a str,
    range: &'a Range,
    /// The last key listed (a buffer reused: no allocation per key).
    last: String,
    any: bool,
    first: Option<String>,
    past: Option<String>,
    token: Option<String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(prefix: &'a str, range: &'a Range) -> Reader<'a> {
        Reader {
            prefix,
            range,
            last: String::new(),
            any: false,
            first: None,
            past: None,
            token: None,
        }
    }

    /// The StartAfter of the range's first request.
    pub(crate) fn start_after(&self) -> Option<&str> {
        self.range.after.as_deref()
    }

    /// One listed key, in the page's order: `Ok(true)` when it belongs to the range.
    pub(crate) fn key(&mut self, key: &str) -> Result<bool, Inconsistent> {
        if !key.starts_with(self.prefix) {
            return Err(Inconsistent::OutsidePrefix { key: key.into() });
        }
        if let Some(after) = &self.range.after
            && key <= after.as_str()
        {
            return Err(Inconsistent::NotAfter {
                key: key.into(),
                after: after.clone(),
            });
        }
        if self.any && key <= self.last.as_str() {
            return Err(Inconsistent::NotSorted {
                key: key.into(),
                previous: self.last.clone(),
            });
        }
        self.any = true;
        self.last.clear();
        self.last.push_str(key);
        if self.first.is_none() {
            self.first = Some(key.to_string());
        }
        if self.past.is_some() {
            return Ok(false);
        }
        if let Some(to) = &self.range.to
            && key > to.as_str()
        {
            self.past = Some(key.to_string());
            return Ok(false);
        }
        Ok(true)
    }

    /// The end of a page (after its keys): the continuation token of the next request, or
    /// `None` when the range is read (a key past its end was listed, or the listing ended).
    /// A page ending exactly at the range's end is followed by one more: the first key past
    /// the end is what [`check_seams`] checks.
    pub(crate) fn page_end(
        &mut self,
        truncated: Option<bool>,
        next_token: Option<&str>,
    ) -> Result<Option<String>, Inconsistent> {
        if self.past.is_some() {
            return Ok(None);
        }
        // As the SDK's paginator: the listing goes on while there is a token.
        let Some(token) = next_token.filter(|t| !t.is_empty()) else {
            if truncated == Some(true) {
                return Err(Inconsistent::TruncatedWithoutToken);
            }
            return Ok(None);
        };
        if self.token.as_deref() == Some(token) {
            return Err(Inconsistent::TokenRepeated);
        }
        self.token = Some(token.to_string());
        Ok(Some(token.to_string()))
    }

    /// The range, read: its edge for [`check_seams`].
    pub(crate) fn finish(self) -> Edge {
        Edge {
            first: self.first,
            ending: self.past.map_or(Ending::End, Ending::Past),
        }
    }
}

/// Check that consecutive ranges meet: the first key listed past a range is the next range's
/// first key, and a range whose listing ended is followed by an empty one.
///
/// Why this suffices. Assume a store lists its keys sorted in one order ≺ of its own, and that
/// a listing holds every key from its first one on (S3: ≺ is `<`, and a listing is the keys
/// after StartAfter; a store that ignores StartAfter lists every key). Range 0 has no
/// StartAfter: it lists every key, as the sequential listing does. A range keeps exactly the
/// keys it lists before its first key past its end, `p` (all of them when it has no end), and
/// only keys within its bounds by `<` ([`Reader::key`] checks), so no key is kept twice.
/// Suppose a key `k` were kept by no range. Take the last range `j` that lists `k`: `k` is
/// `p_j` or comes after it (else range `j` keeps it), so range `j + 1` exists and begins with
/// `p_j` (checked here); it then lists every key from `p_j` on, `k` among them, against the
/// choice of `j`.
pub(crate) fn check_seams(edges: &[Edge], ranges: &[Range]) -> Result<(), Inconsistent> {
    for (pair, next_range) in edges.windows(2).zip(ranges.iter().skip(1)) {
        let next = &pair[1].first;
        let expected = match &pair[0].ending {
            Ending::Past(key) => Some(key),
            Ending::End => None,
        };
        if expected != next.as_ref() {
            return Err(Inconsistent::Seam {
                bound: next_range.after.clone().unwrap_or_default(),
                found: expected.cloned(),
                next: next.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "ranges_tests.rs"]
mod tests;
