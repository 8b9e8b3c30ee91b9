//! CloudFront invalidation: explicit PATHS, or exactly the paths the sync changed.
//!
//! The CallerReference is derived from the distribution, the run (BITBUCKET_BUILD_NUMBER) and a
//! hash of the paths, so a retried step gets the existing invalidation back instead of a second
//! one. Path derivation and collapsing are pure functions, unit-tested.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::error::ProvideErrorMetadata;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use md5::{Digest, Md5};

use crate::config::{InvalidationConfig, PathsSpec};
use crate::output::Output;

/// How long to keep retrying while CloudFront says TooManyInvalidationsInProgress. CloudFront
/// allows 3,000 paths / 15 wildcard paths in flight per distribution; invalidations typically
/// finish within minutes, so five minutes of backoff rides out another deploy's invalidation.
const TOO_MANY_RETRY_BUDGET: Duration = Duration::from_secs(300);
/// First backoff delay, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Polling interval while waiting; CloudFront's own waiter polls every 20 s.
const POLL_EVERY: Duration = Duration::from_secs(5);

/// Errors of this stage, each with its fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InvalidateError {
    #[error(
        "CloudFront distribution {0} does not exist: check DISTRIBUTION_ID (the ID from the CloudFront console, such as E2QWRUHEXAMPLE, not the domain name)"
    )]
    NoSuchDistribution(String),
    /// `allow`: the actions and the distribution's ARN, from `iam::PERMISSIONS`.
    #[error("access denied creating an invalidation on {id} ({detail}): {allow}")]
    AccessDenied {
        id: String,
        detail: String,
        allow: String,
    },
    #[error(
        "CloudFront still had too many invalidations in progress on {0} after retrying for {1} s: wait for them to finish, or lower MAX_INVALIDATION_PATHS so that paths collapse into wildcards"
    )]
    TooManyInProgress(String, u64),
    #[error(
        "invalidation {invalidation} on {id} did not complete within {secs} s (WAIT_TIMEOUT): it is still running; raise WAIT_TIMEOUT or check it in the CloudFront console"
    )]
    WaitTimeout {
        id: String,
        invalidation: String,
        secs: u64,
    },
    #[error("CloudFront {op} on {id} failed: {detail}")]
    Aws {
        op: &'static str,
        id: String,
        detail: String,
    },
}

/// One invalidation made (or, in a dry run, planned).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Invalidation {
    pub(crate) distribution_id: String,
    pub(crate) invalidation_id: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) caller_reference: String,
    pub(crate) paths: Vec<String>,
}

/// `/a b/é.html` → `/a%20b/%C3%A9.html`: CloudFront wants RFC 1738 unsafe characters and
/// non-ASCII bytes percent-encoded, and nothing else. A trailing `*` stays a wildcard.
pub(crate) fn encode_path(path: &str) -> String {
    let (body, star) = match path.strip_suffix('*') {
        Some(b) => (b, "*"),
        None => (path, ""),
    };
    format!(
        "{}{star}",
        percent_encoding::utf8_percent_encode(body, CLOUDFRONT_PATH)
    )
}

/// What CloudFront wants encoded in an invalidation path: controls, space, DEL, RFC 1738's
/// unsafe characters, `?` and `*` (a `*` inside a path is not a wildcard), and every non-ASCII
/// byte (which `percent_encoding` always encodes).
const CLOUDFRONT_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'~')
    .add(b'[')
    .add(b']')
    .add(b'`')
    .add(b'?')
    .add(b'*');

/// The paths for the keys the sync changed (relative to the S3 prefix), below `path_prefix`
/// (starts and ends with `/`). A key ending in `index.html` also invalidates its folder, with
/// and without the trailing slash. Sorted, deduplicated, not yet encoded.
pub(crate) fn changed_paths<'a>(
    rel_keys: impl IntoIterator<Item = &'a str>,
    path_prefix: &str,
) -> Vec<String> {
    let mut set = BTreeSet::new();
    for rel in rel_keys {
        let path = format!("{path_prefix}{rel}");
        if let Some(folder) = path.strip_suffix("index.html")
            && folder.ends_with('/')
        {
            set.insert(folder.to_string());
            let bare = folder.trim_end_matches('/');
            if !bare.is_empty() {
                set.insert(bare.to_string());
            }
        }
        set.insert(path);
    }
    set.into_iter().collect()
}

/// The folder a path or wildcard belongs to: `/a/b/c.css` → `/a/b/`, `/a/b/*` → `/a/`,
/// `/a` → `/`. `None` for `/*` and `/`.
fn parent(path: &str) -> Option<String> {
    let base = path.strip_suffix('*').unwrap_or(path);
    let trimmed = if path.ends_with('*') {
        base.trim_end_matches('/')
    } else {
        base.strip_suffix('/').unwrap_or(base)
    };
    if trimmed.is_empty() {
        return None;
    }
    let cut = trimmed.rfind('/')?;
    Some(trimmed[..=cut].to_string())
}

fn covers(wildcard: &str, path: &str) -> bool {
    wildcard
        .strip_suffix('*')
        .is_some_and(|p| path != wildcard && path.starts_with(p))
}

/// Remove paths covered by a wildcard in the set.
fn dedupe_covered(paths: BTreeSet<String>) -> BTreeSet<String> {
    let wild: Vec<String> = paths.iter().filter(|p| p.ends_with('*')).cloned().collect();
    paths
        .into_iter()
        .filter(|p| !wild.iter().any(|w| covers(w, p)))
        .collect()
}

/// Collapse `paths` into at most `max` paths by replacing the most crowded folders with
/// wildcards (`/assets/*`), deepest first on ties, ending at `/*`. Pure.
pub(crate) fn collapse(paths: &[String], max: usize) -> Vec<String> {
    let mut set: BTreeSet<String> = paths.iter().cloned().collect();
    while set.len() > max.max(1) {
        // Group the current entries by their parent folder.
        let mut best: Option<(usize, usize, String)> = None; // (members, depth, folder)
        let mut groups: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for p in &set {
            if let Some(dir) = parent(p) {
                *groups.entry(dir).or_default() += 1;
            }
        }
        for (dir, n) in &groups {
            let depth = dir.matches('/').count();
            let better = match &best {
                None => true,
                Some((bn, bd, _)) => (*n >= 2 && *n > *bn) || (*n == *bn && depth > *bd),
            };
            if better {
                best = Some((*n, depth, dir.clone()));
            }
        }
        let Some((_, _, dir)) = best else {
            return vec!["/*".to_string()];
        };
        let wildcard = format!("{dir}*");
        set.retain(|p| parent(p).as_deref() != Some(dir.as_str()));
        set.insert(wildcard);
        set = dedupe_covered(set);
        if set.contains("/*") {
            return vec!["/*".to_string()];
        }
    }
    set.into_iter().collect()
}

/// A CallerReference that is the same for the same distribution, run and paths.
pub(crate) fn caller_reference(distribution: &str, run_id: &str, paths: &[String]) -> String {
    let mut h = Md5::new();
    for p in paths {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    format!(
        "s3-deploy-pipe-{run_id}-{distribution}-{}",
        hex::encode(&h.finalize()[..8])
    )
}

/// Decide the paths to invalidate; `None` when `changed` found nothing.
pub(crate) fn paths_for(
    cfg: &InvalidationConfig,
    changed_rel: Option<Vec<&str>>,
) -> Option<Vec<String>> {
    let raw = match &cfg.paths {
        PathsSpec::Explicit(p) => p.clone(),
        PathsSpec::Changed => {
            let rels = changed_rel.unwrap_or_default();
            let p = changed_paths(rels, &cfg.invalidation_prefix);
            if p.is_empty() {
                return None;
            }
            collapse(&p, cfg.max_paths)
        }
    };
    Some(raw.iter().map(|p| encode_path(p)).collect())
}

/// Create the invalidation on every distribution, and wait if asked.
pub(crate) async fn run(
    sdk: &SdkConfig,
    cfg: &InvalidationConfig,
    paths: &[String],
    run_id: &str,
    account_hint: &str,
    dry_run: bool,
    out: &Output,
) -> Result<Vec<Invalidation>, InvalidateError> {
    let client = Client::new(sdk);
    let mut done = Vec::new();
    for id in &cfg.distribution_ids {
        let reference = caller_reference(id, run_id, paths);
        if dry_run {
            out.line(format!("(dryrun) invalidate: {id} {}", paths.join(" ")));
            done.push(Invalidation {
                distribution_id: id.clone(),
                invalidation_id: None,
                status: None,
                caller_reference: reference,
                paths: paths.to_vec(),
            });
            continue;
        }
        out.info(format!(
            "Invalidating {} path(s) on {id}: {}",
            paths.len(),
            paths.join(" ")
        ));
        let (inv_id, status) =
            create(&client, id, paths, &reference, cfg.wait, account_hint).await?;
        let mut inv = Invalidation {
            distribution_id: id.clone(),
            invalidation_id: Some(inv_id.clone()),
            status: Some(status),
            caller_reference: reference,
            paths: paths.to_vec(),
        };
        if cfg.wait {
            inv.status =
                Some(wait(&client, id, &inv_id, cfg.wait_timeout, account_hint, out).await?);
        }
        out.success(format!(
            "Invalidation {inv_id} on {id} {}: https://console.aws.amazon.com/cloudfront/v4/home#/distributions/{id}/invalidations/details/{inv_id}",
            if cfg.wait { "completed" } else { "created" }
        ));
        done.push(inv);
    }
    Ok(done)
}

fn map_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    op: &'static str,
    id: &str,
    wait: bool,
    account: &str,
    err: &aws_sdk_cloudfront::error::SdkError<E>,
) -> InvalidateError {
    let (code, detail) = crate::s3::error::code_and_detail(err);
    match code.as_str() {
        "NoSuchDistribution" => InvalidateError::NoSuchDistribution(id.to_string()),
        "AccessDenied" | "AccessDeniedException" => {
            use crate::iam::Feature::{Invalidation, Wait};
            let features: &[crate::iam::Feature] = if wait {
                &[Invalidation, Wait]
            } else {
                &[Invalidation]
            };
            let names = crate::iam::Names {
                account,
                distribution: id,
                ..Default::default()
            };
            InvalidateError::AccessDenied {
                id: id.to_string(),
                detail,
                allow: crate::iam::allow(crate::iam::Service::CloudFront, features, &names),
            }
        }
        _ => InvalidateError::Aws {
            op,
            id: id.to_string(),
            detail,
        },
    }
}

async fn create(
    client: &Client,
    id: &str,
    paths: &[String],
    reference: &str,
    wait: bool,
    account: &str,
) -> Result<(String, String), InvalidateError> {
    let quantity = i32::try_from(paths.len()).unwrap_or(i32::MAX);
    let build_err = |e: aws_sdk_cloudfront::error::BuildError| InvalidateError::Aws {
        op: "CreateInvalidation",
        id: id.to_string(),
        detail: e.to_string(),
    };
    let batch = InvalidationBatch::builder()
        .paths(
            Paths::builder()
                .quantity(quantity)
                .set_items(Some(paths.to_vec()))
                .build()
                .map_err(build_err)?,
        )
        .caller_reference(reference)
        .build()
        .map_err(build_err)?;
    let start = Instant::now();
    let mut delay = FIRST_BACKOFF;
    loop {
        let res = client
            .create_invalidation()
            .distribution_id(id)
            .invalidation_batch(batch.clone())
            .send()
            .await;
        match res {
            Ok(resp) => {
                let inv = resp.invalidation();
                let inv_id = inv.map(|i| i.id().to_string()).unwrap_or_default();
                let status = inv.map(|i| i.status().to_string()).unwrap_or_default();
                return Ok((inv_id, status));
            }
            Err(e) => {
                let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
                if code == "TooManyInvalidationsInProgress" {
                    if start.elapsed() + delay > TOO_MANY_RETRY_BUDGET {
                        return Err(InvalidateError::TooManyInProgress(
                            id.to_string(),
                            start.elapsed().as_secs(),
                        ));
                    }
                    tracing::debug!(?delay, "TooManyInvalidationsInProgress; backing off");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                    continue;
                }
                return Err(map_error("CreateInvalidation", id, wait, account, &e));
            }
        }
    }
}

async fn wait(
    client: &Client,
    id: &str,
    inv_id: &str,
    timeout: Duration,
    account: &str,
    out: &Output,
) -> Result<String, InvalidateError> {
    let start = Instant::now();
    loop {
        let resp = client
            .get_invalidation()
            .distribution_id(id)
            .id(inv_id)
            .send()
            .await
            .map_err(|e| map_error("GetInvalidation", id, true, account, &e))?;
        let status = resp
            .invalidation()
            .map(|i| i.status().to_string())
            .unwrap_or_default();
        if status == "Completed" {
            return Ok(status);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(InvalidateError::WaitTimeout {
                id: id.to_string(),
                invalidation: inv_id.to_string(),
                secs: timeout.as_secs(),
            });
        }
        out.info(format!(
            "Waiting for invalidation {inv_id} on {id}: {status} ({} s)",
            elapsed.as_secs()
        ));
        tokio::time::sleep(
            POLL_EVERY
                .min(timeout.saturating_sub(elapsed))
                .max(Duration::from_millis(200)),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn index_html_invalidates_its_folder_both_ways() {
        let p = changed_paths(["docs/index.html", "index.html", "a.css"], "/");
        assert_eq!(
            p,
            s(&[
                "/",
                "/a.css",
                "/docs",
                "/docs/",
                "/docs/index.html",
                "/index.html"
            ])
        );
        let p = changed_paths(["x/index.html"], "/site/");
        assert_eq!(p, s(&["/site/x", "/site/x/", "/site/x/index.html"]));
        assert_eq!(
            changed_paths(["notindex.html"], "/"),
            s(&["/notindex.html"])
        );
    }

    #[test]
    fn encoding_follows_cloudfront() {
        assert_eq!(encode_path("/a b/é.html"), "/a%20b/%C3%A9.html");
        assert_eq!(encode_path("/x~[1]#?.css"), "/x%7E%5B1%5D%23%3F.css");
        assert_eq!(encode_path("/a+b=c&d.js"), "/a+b=c&d.js");
        assert_eq!(encode_path("/assets/*"), "/assets/*");
        assert_eq!(encode_path("/100%.txt"), "/100%25.txt");
        assert_eq!(encode_path("/a\u{7f}\tb*c"), "/a%7F%09b%2Ac");
    }

    #[test]
    fn collapse_keeps_small_sets() {
        let p = s(&["/a.css", "/b.css"]);
        assert_eq!(collapse(&p, 15), p);
    }

    #[test]
    fn collapse_groups_the_crowded_folder() {
        let mut p: Vec<String> = (0..20).map(|i| format!("/assets/{i}.js")).collect();
        p.push("/index.html".into());
        p.push("/".into());
        assert_eq!(collapse(&p, 15), s(&["/", "/assets/*", "/index.html"]));
    }

    #[test]
    fn collapse_goes_up_to_the_root() {
        let p: Vec<String> = (0..20).map(|i| format!("/d{i}/f.js")).collect();
        assert_eq!(collapse(&p, 5), s(&["/*"]));
        let p: Vec<String> = (0..6).map(|i| format!("/a/b{}/c/f{i}.js", i % 2)).collect();
        let c = collapse(&p, 2);
        assert_eq!(c, s(&["/a/b0/c/*", "/a/b1/c/*"]));
        assert_eq!(collapse(&p, 1), s(&["/a/*"]));
    }

    #[test]
    fn collapsed_paths_cover_every_input() {
        let p: Vec<String> = (0..50)
            .map(|i| format!("/x{}/y{}/z{i}.css", i % 3, i % 5))
            .collect();
        for max in [1, 3, 5, 10, 15, 49] {
            let c = collapse(&p, max);
            assert!(c.len() <= max, "{max}: {c:?}");
            for path in &p {
                assert!(
                    c.iter().any(|w| w == path || covers(w, path)),
                    "{path} not covered by {c:?}"
                );
            }
        }
    }

    #[test]
    fn caller_reference_is_deterministic() {
        let a = caller_reference("E1", "build-7", &s(&["/a", "/b"]));
        assert_eq!(a, caller_reference("E1", "build-7", &s(&["/a", "/b"])));
        assert_ne!(a, caller_reference("E2", "build-7", &s(&["/a", "/b"])));
        assert_ne!(a, caller_reference("E1", "build-8", &s(&["/a", "/b"])));
        assert_ne!(a, caller_reference("E1", "build-7", &s(&["/a"])));
    }
}
