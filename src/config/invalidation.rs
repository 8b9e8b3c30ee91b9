//! The CloudFront invalidation job.

use std::time::Duration;

use super::{Env, Problems, RawVars, bool_var, int_var, list_var, non_empty};

/// Default cap on the number of paths in one `changed` invalidation before they collapse into
/// wildcards: CloudFront bills paths above 1,000 a month, and allows 15 wildcard paths in flight.
pub(crate) const DEFAULT_MAX_INVALIDATION_PATHS: usize = 15;
/// CloudFront accepts at most 3,000 paths in one invalidation.
const MAX_INVALIDATION_PATHS_LIMIT: usize = 3000;
/// Default for `WAIT_TIMEOUT`: CloudFront invalidations usually complete within a few minutes.
const DEFAULT_WAIT_TIMEOUT_SECS: u64 = 600;

/// Which paths to invalidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathsSpec {
    /// Exactly these paths (already validated; not yet URL-encoded).
    Explicit(Vec<String>),
    /// The keys the sync uploaded, re-headered or deleted.
    Changed,
}

/// The CloudFront invalidation job.
#[derive(Debug, Clone)]
pub(crate) struct InvalidationConfig {
    pub(crate) distribution_ids: Vec<String>,
    pub(crate) paths: PathsSpec,
    /// The CloudFront path that the S3 key prefix maps to; starts and ends with `/`.
    pub(crate) invalidation_prefix: String,
    pub(crate) max_paths: usize,
    pub(crate) wait: bool,
    pub(crate) wait_timeout: Duration,
}

/// CloudFront distribution IDs are upper-case letters and digits.
fn distribution_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A CloudFront path: starts with `/`; `*` only as the last character.
fn invalidation_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!(
            "{path:?} must start with \"/\": write /{}",
            path.trim_start_matches('/')
        ));
    }
    if let Some(pos) = path.find('*')
        && pos != path.len() - 1
    {
        return Some(format!(
            "{path:?} has \"*\" before the end: CloudFront allows a wildcard only as the last character"
        ));
    }
    None
}

pub(super) fn resolve_invalidation(
    raw: &RawVars,
    env: &Env,
    p: &mut Problems,
    syncing: bool,
) -> Option<InvalidationConfig> {
    let ids: Vec<String> = match list_var(env, p, "DISTRIBUTION_ID") {
        Some(list) => list.into_iter().map(|s| s.trim().to_string()).collect(),
        None => non_empty(&raw.distribution_id)?
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    for id in &ids {
        if !distribution_id_ok(id) {
            p.add(
                "DISTRIBUTION_ID",
                format!("{id:?} is not a distribution ID: use the ID from the CloudFront console, upper-case letters and digits such as E2QWRUHEXAMPLE"),
            );
        }
    }
    let path_items = list_var(env, p, "PATHS").or_else(|| {
        non_empty(&raw.paths).map(|s| s.split_whitespace().map(str::to_string).collect())
    });
    let paths = match path_items {
        None if syncing => PathsSpec::Changed,
        None => PathsSpec::Explicit(vec!["/*".to_string()]),
        Some(items) if items.len() == 1 && items[0].trim() == "changed" => {
            if !syncing {
                p.add(
                    "PATHS",
                    "\"changed\" needs a sync in the same run: set S3_BUCKET and LOCAL_PATH, or list the paths",
                );
            }
            PathsSpec::Changed
        }
        Some(items) => {
            if items.is_empty() {
                p.add(
                    "PATHS",
                    "is an empty list: give at least one path, such as /*",
                );
            }
            for item in &items {
                if let Some(problem) = invalidation_path_problem(item) {
                    p.add("PATHS", problem);
                }
            }
            PathsSpec::Explicit(items)
        }
    };
    let invalidation_prefix = match non_empty(&raw.invalidation_prefix) {
        None => "/".to_string(),
        Some(v) if v.starts_with('/') && !v.contains('*') => {
            if v.ends_with('/') {
                v.to_string()
            } else {
                format!("{v}/")
            }
        }
        Some(v) => {
            p.add(
                "INVALIDATION_PREFIX",
                format!(
                    "{v:?} must be a path starting with \"/\" and without \"*\", such as /site/"
                ),
            );
            "/".to_string()
        }
    };
    let max_paths = int_var(
        p,
        "MAX_INVALIDATION_PATHS",
        &raw.max_invalidation_paths,
        (1usize, MAX_INVALIDATION_PATHS_LIMIT),
        "above this many changed paths, they collapse into wildcards",
    )
    .unwrap_or(DEFAULT_MAX_INVALIDATION_PATHS);
    let wait = bool_var(p, "WAIT", &raw.wait, false);
    let wait_timeout = int_var(
        p,
        "WAIT_TIMEOUT",
        &raw.wait_timeout,
        (1u64, 86_400),
        "seconds to wait for the invalidation to complete",
    )
    .unwrap_or(DEFAULT_WAIT_TIMEOUT_SECS);
    Some(InvalidationConfig {
        distribution_ids: ids,
        paths,
        invalidation_prefix,
        max_paths,
        wait,
        wait_timeout: Duration::from_secs(wait_timeout),
    })
}
