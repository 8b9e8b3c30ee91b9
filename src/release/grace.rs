//! The delete grace period, pure: which delete candidates are deleted now, which become or stay
//! stale, and how two states written at once are merged. No network: unit-tested by tables.

use std::collections::{BTreeMap, BTreeSet};

/// What the grace period makes of a run's delete candidates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Graced {
    /// Delete now: stale for longer than the grace (or every candidate, without a grace).
    pub(crate) deletes: Vec<String>,
    /// The stale keys after this run (waiting), with the time each became stale.
    pub(crate) stale: BTreeMap<String, i64>,
    /// Candidates that were not stale before this run.
    pub(crate) became_stale: usize,
    /// Deletes of keys that had been stale for longer than the grace.
    pub(crate) stale_deleted: usize,
}

/// Apply the grace period (`grace` seconds; `None`: none) at time `now` to the delete
/// candidates (sorted), given the stale keys recorded before this run. A recorded stale key
/// that is no candidate any more (its file came back, or the object is gone) is dropped: it is
/// live again, and would become stale anew.
pub(crate) fn apply(
    candidates: &[String],
    previous: &BTreeMap<String, i64>,
    now: i64,
    grace: Option<u64>,
) -> Graced {
    let Some(grace) = grace else {
        return Graced {
            deletes: candidates.to_vec(),
            ..Graced::default()
        };
    };
    let grace = i64::try_from(grace).unwrap_or(i64::MAX);
    let mut out = Graced::default();
    for key in candidates {
        match previous.get(key) {
            Some(&since) if now.saturating_sub(since) >= grace => {
                out.deletes.push(key.clone());
                out.stale_deleted += 1;
            }
            Some(&since) => {
                out.stale.insert(key.clone(), since);
            }
            None => {
                out.stale.insert(key.clone(), now);
                out.became_stale += 1;
            }
        }
    }
    out
}

/// The stale keys to write when another deploy wrote the state after this run read it.
/// `ours`: what this run computed from `base` (the state it read); `theirs`: the state now.
/// Keys that the other run made stale are kept unless this run left them live or deleted them;
/// of a key both made stale, the earlier time is kept. A key that was stale in `base` and that
/// this run dropped stays dropped.
pub(crate) fn merge(
    ours: &BTreeMap<String, i64>,
    base: &BTreeMap<String, i64>,
    theirs: &BTreeMap<String, i64>,
    live: &BTreeSet<String>,
    deleted: &BTreeSet<String>,
) -> BTreeMap<String, i64> {
    let mut out = ours.clone();
    for (key, &since) in theirs {
        if base.contains_key(key) && !ours.contains_key(key) {
            continue;
        }
        if live.contains(key) || deleted.contains(key) {
            continue;
        }
        out.entry(key.clone())
            .and_modify(|s| *s = (*s).min(since))
            .or_insert(since);
    }
    out
}

/// The delete grace period in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct GraceSummary {
    pub(crate) grace_seconds: u64,
    /// Keys that became stale in this run.
    pub(crate) became_stale: usize,
    /// Stale keys deleted in this run (stale for longer than the grace).
    pub(crate) stale_deleted: usize,
    /// Stale keys waiting after this run (the ones that became stale included).
    pub(crate) stale_waiting: usize,
}

impl GraceSummary {
    /// `delete grace 7d: 2 became stale, 1 stale deleted, 3 waiting`
    pub(crate) fn line(&self) -> String {
        format!(
            "delete grace {}: {} became stale, {} stale deleted, {} waiting",
            super::format_duration(self.grace_seconds),
            self.became_stale,
            self.stale_deleted,
            self.stale_waiting
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_a_grace_every_candidate_is_deleted() {
        let g = apply(&keys(&["a", "b"]), &map(&[("a", 0)]), 100, None);
        assert_eq!(g.deletes, keys(&["a", "b"]));
        assert!(g.stale.is_empty());
        assert_eq!((g.became_stale, g.stale_deleted), (0, 0));
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn the_grace_table() {
        // (candidates, recorded stale, now, grace) -> (deletes, stale after, became, deleted)
        let h = 3600;
        let cases: Vec<(
            Vec<String>,
            BTreeMap<String, i64>,
            i64,
            Vec<String>,
            BTreeMap<String, i64>,
            usize,
            usize,
        )> = vec![
            // New candidates become stale now.
            (
                keys(&["a"]),
                map(&[]),
                1000,
                keys(&[]),
                map(&[("a", 1000)]),
                1,
                0,
            ),
            // Stale for less than the grace: still waiting, with its first time.
            (
                keys(&["a"]),
                map(&[("a", 1000)]),
                1000 + h - 1,
                keys(&[]),
                map(&[("a", 1000)]),
                0,
                0,
            ),
            // Stale for the whole grace: deleted.
            (
                keys(&["a"]),
                map(&[("a", 1000)]),
                1000 + h,
                keys(&["a"]),
                map(&[]),
                0,
                1,
            ),
            // A stale key whose file came back (no candidate) is live again: dropped.
            (
                keys(&["b"]),
                map(&[("a", 0), ("b", 0)]),
                10 * h,
                keys(&["b"]),
                map(&[]),
                0,
                1,
            ),
            // Mixed.
            (
                keys(&["a", "b", "c"]),
                map(&[("a", 0), ("b", 5000)]),
                6000,
                keys(&["a"]),
                map(&[("b", 5000), ("c", 6000)]),
                1,
                1,
            ),
        ];
        for (cand, prev, now, deletes, stale, became, deleted) in cases {
            let g = apply(&cand, &prev, now, Some(h as u64));
            assert_eq!(g.deletes, deletes, "{cand:?} {prev:?} at {now}");
            assert_eq!(g.stale, stale, "{cand:?} {prev:?} at {now}");
            assert_eq!((g.became_stale, g.stale_deleted), (became, deleted));
        }
    }

    #[test]
    fn concurrent_states_merge() {
        let base = map(&[("old", 10), ("dropped", 10)]);
        // This run: "dropped" came back, "mine" became stale.
        let ours = map(&[("old", 10), ("mine", 50)]);
        // The other run: made "theirs" and "mine" stale, and "live-here" (which we uploaded).
        let theirs = map(&[
            ("old", 10),
            ("dropped", 10),
            ("theirs", 40),
            ("mine", 30),
            ("live-here", 40),
            ("gone", 40),
        ]);
        let live: BTreeSet<String> = ["live-here".to_string()].into();
        let deleted: BTreeSet<String> = ["gone".to_string()].into();
        let m = merge(&ours, &base, &theirs, &live, &deleted);
        assert_eq!(m, map(&[("old", 10), ("mine", 30), ("theirs", 40)]));
        // Nobody else wrote: ours as it is.
        assert_eq!(merge(&ours, &base, &base, &live, &deleted), ours);
    }
}
