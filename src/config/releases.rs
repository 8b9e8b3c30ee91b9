//! Releases, the delete grace period, rollback and the release list: `DELETE_GRACE`,
//! `STATE_PREFIX`, `RELEASE_HISTORY`, `ROLLBACK`, `RELEASES`.

use super::{Problems, RawVars, int_var, non_empty};

/// The folder, below the target prefix, that holds the pipe's state unless `STATE_PREFIX`
/// moves it. Any key with this segment is reserved: never uploaded over, deleted or invalidated.
pub(crate) const STATE_DIR: &str = ".s3-deploy-pipe";
/// Default for `RELEASE_HISTORY`: releases kept (and so the releases one can roll back to).
pub(crate) const DEFAULT_RELEASE_HISTORY: usize = 20;
/// Upper bound for `RELEASE_HISTORY`: each release is one manifest object.
const MAX_RELEASE_HISTORY: usize = 1000;
/// Upper bound for `DELETE_GRACE`: ten years.
const MAX_GRACE_SECS: u64 = 3650 * 86_400;

/// What the run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Sync LOCAL_PATH (the default).
    Deploy,
    /// `ROLLBACK`: restore the prefix to a recorded release, server-side.
    Rollback(RollbackTarget),
    /// `RELEASES=list`: print the recorded releases and exit.
    ListReleases,
}

/// Which release `ROLLBACK` restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RollbackTarget {
    /// The release before the live one.
    Previous,
    /// A release by its id.
    Id(String),
}

/// Where the state lives and what is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseConfig {
    /// Full key prefix of the state objects, ending in `/`.
    pub(crate) state_prefix: String,
    /// Releases kept; 0: none are recorded.
    pub(crate) history: usize,
    /// `RELEASE_HISTORY` was set: releases are recorded on any bucket. Unset, a deploy records
    /// one only where the state serves something (see `sync::release_draft::state_serves`).
    pub(crate) history_set: bool,
    /// `DELETE_GRACE` in seconds.
    pub(crate) grace_secs: Option<u64>,
    /// The release id: `BITBUCKET_BUILD_NUMBER`, else a timestamp chosen when it is recorded.
    pub(crate) release_id: Option<String>,
    /// `BITBUCKET_COMMIT`.
    pub(crate) commit: Option<String>,
}

impl ReleaseConfig {
    /// Whether the run reads and writes the state object at all.
    pub(crate) fn uses_state(&self) -> bool {
        self.history > 0 || self.grace_secs.is_some()
    }
}

/// Parse a duration such as `90m`, `48h`, `7d`, `2w` or `1d12h` into seconds. A bare number
/// has no unit and is refused (minutes and seconds are both common).
pub(crate) fn parse_duration(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in v.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(format!("{v:?} has {c:?}, which is not a unit")),
        };
        if number.is_empty() {
            return Err(format!("{v:?} has a unit without a number before it"));
        }
        let n: u64 = number.parse().map_err(|_| format!("{v:?} is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("{v:?} is too long"))?;
        number.clear();
        any = true;
    }
    if !number.is_empty() {
        return Err(if any {
            format!("{v:?} ends in a number without a unit")
        } else {
            format!("{v:?} has no unit")
        });
    }
    if !any {
        return Err(format!("{v:?} is not a duration"));
    }
    Ok(total)
}

/// The mode, from `ROLLBACK` and `RELEASES`.
pub(super) fn resolve_mode(raw: &RawVars, p: &mut Problems) -> Mode {
    let rollback = non_empty(&raw.rollback);
    let list = non_empty(&raw.releases);
    match (rollback, list) {
        (Some(_), Some(_)) => {
            p.add(
                "ROLLBACK",
                "cannot be set together with RELEASES: a run either rolls back or lists the releases; unset one",
            );
            // Not a deploy either way: LOCAL_PATH is not asked for (the problem stops the run).
            Mode::ListReleases
        }
        (None, Some(l)) if l.eq_ignore_ascii_case("list") => Mode::ListReleases,
        (None, Some(other)) => {
            p.add(
                "RELEASES",
                format!(
                    "{other:?} is not an action: set RELEASES=list to print the recorded releases"
                ),
            );
            Mode::ListReleases
        }
        (Some(r), None) if r.eq_ignore_ascii_case("previous") => {
            Mode::Rollback(RollbackTarget::Previous)
        }
        (Some(r), None) => {
            if r.chars().any(char::is_control) || r.len() > 200 {
                p.add(
                    "ROLLBACK",
                    "is not a release id: set it to previous, or to an id that RELEASES=list prints",
                );
                Mode::Rollback(RollbackTarget::Previous)
            } else {
                Mode::Rollback(RollbackTarget::Id(r.to_string()))
            }
        }
        (None, None) => Mode::Deploy,
    }
}

/// The release settings of a sync to `prefix` (empty or ending in `/`).
pub(super) fn resolve_releases(
    raw: &RawVars,
    prefix: &str,
    delete: bool,
    deploy: bool,
    p: &mut Problems,
) -> ReleaseConfig {
    let history = int_var(
        p,
        "RELEASE_HISTORY",
        &raw.release_history,
        (0usize, MAX_RELEASE_HISTORY),
        "the number of releases kept to roll back to (0 records none)",
    )
    .unwrap_or(DEFAULT_RELEASE_HISTORY);
    let grace_secs = non_empty(&raw.delete_grace).and_then(|v| match parse_duration(v).or_else(|e| {
        if v.trim().bytes().all(|b| b == b'0') { Ok(0) } else { Err(e) }
    }) {
        Ok(0) => None,
        Ok(s) if s > MAX_GRACE_SECS => {
            p.add("DELETE_GRACE", format!("{v:?} is more than ten years"));
            None
        }
        Ok(s) => Some(s),
        Err(e) => {
            p.add(
                "DELETE_GRACE",
                format!("{e}: write a number and a unit, e.g. 90m, 48h or 7d (s, m, h, d, w; 1d12h also works)"),
            );
            None
        }
    });
    if grace_secs.is_some() && !delete && deploy {
        p.add(
            "DELETE_GRACE",
            "needs DELETE_FLAG: \"true\": the grace period delays deletes, and without DELETE_FLAG nothing is deleted (or unset DELETE_GRACE)",
        );
    }
    let state_prefix = match non_empty(&raw.state_prefix) {
        None => format!("{prefix}{STATE_DIR}/"),
        Some(s) => {
            let s = s.trim_start_matches("s3://").trim_matches('/');
            if s.is_empty() || s.chars().any(char::is_control) || s.len() > 512 {
                p.add(
                    "STATE_PREFIX",
                    format!("{s:?} is not a key prefix: write a folder of the same bucket, e.g. deploy-state/site"),
                );
            }
            let s = format!("{s}/");
            if s != prefix && prefix.starts_with(&s) {
                p.add(
                    "STATE_PREFIX",
                    format!("{s:?} holds the deployed prefix {prefix:?}: every key of the site would be reserved for the state; use a folder beside it, e.g. deploy-state/{prefix}"),
                );
            }
            if s == prefix {
                p.add(
                    "STATE_PREFIX",
                    format!("{s:?} is the deployed prefix itself: its state would mix with the site's files; use a folder of its own, e.g. {}{STATE_DIR}", prefix),
                );
            } else if let Some(inside) = s.strip_prefix(prefix)
                && !inside.split('/').any(|segment| segment == STATE_DIR)
            {
                p.add(
                    "STATE_PREFIX",
                    format!("{s:?} is inside the deployed prefix {prefix:?}: the site's files there would be taken for the state and never deployed; use a folder outside it (e.g. deploy-state/{prefix}) or one named {STATE_DIR} (e.g. {prefix}{STATE_DIR}/)"),
                );
            }
            // The state lives in a folder named .s3-deploy-pipe below the given prefix: every
            // deploy of the pipe, of any prefix, leaves such folders alone, so a STATE_PREFIX
            // inside another site's prefix is never deleted by that site's deploys.
            if s.split('/').any(|segment| segment == STATE_DIR) {
                s
            } else {
                format!("{s}{STATE_DIR}/")
            }
        }
    };
    if prefix.split('/').any(|segment| segment == STATE_DIR) {
        p.add(
            "S3_BUCKET",
            format!("the prefix {prefix:?} is inside a {STATE_DIR} folder, which holds the pipe's release state: deploy to a prefix without one"),
        );
    }
    ReleaseConfig {
        state_prefix,
        history,
        history_set: non_empty(&raw.release_history).is_some(),
        grace_secs,
        release_id: label(p, "BITBUCKET_BUILD_NUMBER", &raw.bitbucket_build_number),
        commit: label(p, "BITBUCKET_COMMIT", &raw.bitbucket_commit),
    }
}

/// A build number or commit, recorded in the release state and printed: at most
/// [`MAX_LABEL_CHARS`] characters, none of them a control character.
fn label(p: &mut Problems, var: &str, value: &Option<String>) -> Option<String> {
    let v = non_empty(value)?;
    if v.chars().count() > MAX_LABEL_CHARS || v.chars().any(char::is_control) {
        p.add(
            var,
            format!("is over {MAX_LABEL_CHARS} characters or has control characters: Bitbucket sets it to a build number or a commit hash; unset it or set it to one"),
        );
        return None;
    }
    Some(v.to_string())
}

/// Build numbers and commit hashes (40 hex digits) are far shorter; release ids stay under the
/// 128 characters the state allows (`release::validate`), `.N` suffixes included.
const MAX_LABEL_CHARS: usize = 64;

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn huge_durations_are_too_large_and_labels_are_bounded() {
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err("\"99999999999999999999s\" is too large".to_string())
        );
        assert!(
            parse_duration("h")
                .expect_err("no number")
                .contains("without a number")
        );
        let mut p = Problems::default();
        assert_eq!(
            label(&mut p, "BITBUCKET_BUILD_NUMBER", &Some("42".into())),
            Some("42".into())
        );
        assert_eq!(
            label(&mut p, "BITBUCKET_BUILD_NUMBER", &Some("9".repeat(100_000))),
            None
        );
        assert_eq!(
            label(&mut p, "BITBUCKET_COMMIT", &Some("a\n✔ forged".into())),
            None
        );
        assert_eq!(p.0.len(), 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("48h"), Ok(172_800));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("1d12h"), Ok(129_600));
        assert_eq!(parse_duration(" 30s "), Ok(30));
        assert_eq!(parse_duration("0d"), Ok(0));
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "1d7",
            "-1d",
            "7 d",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
