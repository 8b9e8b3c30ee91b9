//! The one rule for writes: which keys the pipe may write, copy onto or delete.
//!
//! - **Site** keys: below the deployed prefix, and not reserved for the pipe's state (below the
//!   state prefix, or with a `.s3-deploy-pipe` segment anywhere: the default state folder of
//!   any prefix of the bucket).
//! - **State** keys: below the state prefix, and only of the forms the pipe writes there:
//!   `state.json` and `releases/<digits>-<id>.json.gz`.
//!
//! Everything else is refused, whatever the bucket (the listing, `state.json`, a manifest) or
//! the disk says. [`super::writer::Writer`] checks every put, copy and delete against this
//! before the request is built; nothing else in the crate sends one.

use crate::config::STATE_DIR;

/// The state object's name below the state prefix.
pub(crate) const STATE_OBJECT: &str = "state.json";
/// The manifests' folder below the state prefix.
pub(crate) const MANIFEST_DIR: &str = "releases/";
/// A manifest's name below [`MANIFEST_DIR`]: `<digits>-<id>.json.gz`, where the id is at most
/// this many characters of `[A-Za-z0-9._-]` (see `release::store::Store::manifest_key`).
pub(crate) const MANIFEST_ID_MAX: usize = 64;
const MANIFEST_SUFFIX: &str = ".json.gz";

/// Which of the two key sets a write is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Area {
    /// The deployed files.
    Site,
    /// The pipe's release state.
    State,
}

/// A write the rule refuses: nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused to write s3://{bucket}/{key}: {reason}. The pipe writes only below s3://{bucket}/{site_prefix} (its files) and s3://{bucket}/{state_prefix} (its release state); nothing was written to this key"
)]
pub(crate) struct OutOfScope {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) reason: &'static str,
    pub(crate) site_prefix: String,
    pub(crate) state_prefix: String,
}

/// The keys one run may write: its bucket, deployed prefix and state prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    bucket: String,
    /// Empty (the whole bucket) or ending in `/`.
    site_prefix: String,
    /// Ends in `/`.
    state_prefix: String,
}

impl Scope {
    pub(crate) fn new(bucket: &str, site_prefix: &str, state_prefix: &str) -> Scope {
        Scope {
            bucket: bucket.to_string(),
            site_prefix: site_prefix.to_string(),
            state_prefix: state_prefix.to_string(),
        }
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }
    pub(crate) fn site_prefix(&self) -> &str {
        &self.site_prefix
    }
    pub(crate) fn state_prefix(&self) -> &str {
        &self.state_prefix
    }

    /// Whether a full key belongs to the pipe's state (see the module's doc). Such keys are
    /// never uploaded over, deleted by a sync, counted in a plan or invalidated.
    pub(crate) fn is_reserved(&self, key: &str) -> bool {
        is_reserved(key, &self.state_prefix)
    }

    /// The rule. `Ok` when `key` may be written in `area`.
    pub(crate) fn check(&self, area: Area, key: &str) -> Result<(), OutOfScope> {
        let refuse = |reason| {
            Err(OutOfScope {
                bucket: self.bucket.clone(),
                key: key.to_string(),
                reason,
                site_prefix: self.site_prefix.clone(),
                state_prefix: self.state_prefix.clone(),
            })
        };
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return refuse("not a key S3 accepts (empty, or over 1,024 bytes)");
        }
        // `.` and `..` segments: an HTTP stack between us and the store may resolve them in a
        // request path, which would move the write elsewhere.
        if key.split('/').any(|s| s == "." || s == "..") {
            return refuse("it has a `.` or `..` segment");
        }
        if key.chars().any(char::is_control) {
            return refuse("it has a control character");
        }
        match area {
            Area::Site => {
                let Some(rel) = key.strip_prefix(self.site_prefix.as_str()) else {
                    return refuse("it is outside the deployed prefix");
                };
                if rel.is_empty() {
                    return refuse("it is the deployed prefix itself");
                }
                if self.is_reserved(key) {
                    return refuse("it is reserved for the pipe's release state");
                }
                Ok(())
            }
            Area::State => {
                let Some(rest) = key.strip_prefix(self.state_prefix.as_str()) else {
                    return refuse("it is outside the state prefix");
                };
                if rest == STATE_OBJECT || is_manifest_name(rest) {
                    Ok(())
                } else {
                    refuse(
                        "it is not a state object the pipe writes (state.json or releases/<time>-<id>.json.gz)",
                    )
                }
            }
        }
    }

    /// Whether `key` is a manifest key of this state prefix.
    pub(crate) fn is_manifest_key(&self, key: &str) -> bool {
        key.strip_prefix(self.state_prefix.as_str())
            .is_some_and(is_manifest_name)
    }
}

/// S3 keys are at most 1,024 bytes of UTF-8.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// See [`Scope::is_reserved`].
pub(crate) fn is_reserved(key: &str, state_prefix: &str) -> bool {
    key.starts_with(state_prefix) || key.split('/').any(|segment| segment == STATE_DIR)
}

/// `releases/<digits>-<id>.json.gz`, relative to the state prefix.
fn is_manifest_name(rest: &str) -> bool {
    let Some(name) = rest
        .strip_prefix(MANIFEST_DIR)
        .and_then(|n| n.strip_suffix(MANIFEST_SUFFIX))
    else {
        return false;
    };
    let Some((time, id)) = name.split_once('-') else {
        return false;
    };
    !time.is_empty()
        && time.len() <= 20
        && time.bytes().all(|b| b.is_ascii_digit())
        && id.len() <= MANIFEST_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && id != "."
        && id != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_keys() {
        let state = "site/.s3-deploy-pipe/";
        assert!(is_reserved("site/.s3-deploy-pipe/state.json", state));
        assert!(is_reserved("other/.s3-deploy-pipe/state.json", state));
        assert!(is_reserved(".s3-deploy-pipe/releases/x", "deploy-state/"));
        assert!(is_reserved("deploy-state/state.json", "deploy-state/"));
        assert!(!is_reserved("site/.s3-deploy-pipe.html", state));
        assert!(!is_reserved("site/a.s3-deploy-pipe/x", state));
        assert!(!is_reserved("site/index.html", state));
    }

    #[test]
    fn site_writes_stay_below_the_prefix_and_off_the_state() {
        let s = Scope::new("b", "site/", "site/.s3-deploy-pipe/");
        for ok in [
            "site/index.html",
            "site/a/b.css",
            "site/.well-known/x",
            "site/a..b",
        ] {
            assert_eq!(s.check(Area::Site, ok), Ok(()), "{ok}");
        }
        for bad in [
            "other/secret.txt",
            "site",
            "site/",
            "sitex/a",
            "site/.s3-deploy-pipe/state.json",
            "site/sub/.s3-deploy-pipe/state.json",
            "other/.s3-deploy-pipe/state.json",
            "site/../other/index.html",
            "site/./a",
            "site/a\nb",
            "",
        ] {
            assert!(s.check(Area::Site, bad).is_err(), "{bad:?}");
        }
        let long = format!("site/{}", "a".repeat(1020));
        assert!(s.check(Area::Site, &long).is_err());
    }

    #[test]
    fn the_whole_bucket_is_a_site_prefix_too() {
        let s = Scope::new("b", "", ".s3-deploy-pipe/");
        assert_eq!(s.check(Area::Site, "index.html"), Ok(()));
        assert!(s.check(Area::Site, ".s3-deploy-pipe/state.json").is_err());
        assert!(s.check(Area::Site, "a/.s3-deploy-pipe/x").is_err());
    }

    #[test]
    fn state_writes_only_of_the_forms_the_pipe_writes() {
        let s = Scope::new("b", "site/", "site/.s3-deploy-pipe/");
        for ok in [
            "site/.s3-deploy-pipe/state.json",
            "site/.s3-deploy-pipe/releases/1796206931000-42.json.gz",
            "site/.s3-deploy-pipe/releases/1796206931000-20261202-102211.json.gz",
            "site/.s3-deploy-pipe/releases/1-a_b.c.json.gz",
        ] {
            assert_eq!(s.check(Area::State, ok), Ok(()), "{ok}");
            assert!(s.check(Area::Site, ok).is_err(), "{ok} as a site key");
        }
        for bad in [
            "site/index.html",
            "other/secret.txt",
            "other/.s3-deploy-pipe/state.json",
            "site/.s3-deploy-pipe/other.json",
            "site/.s3-deploy-pipe/releases/x.json.gz",
            "site/.s3-deploy-pipe/releases/1-a/b.json.gz",
            "site/.s3-deploy-pipe/releases/1-../x.json.gz",
            "site/.s3-deploy-pipe/releases/-42.json.gz",
            "site/.s3-deploy-pipe/releases/1-42.json",
        ] {
            assert!(s.check(Area::State, bad).is_err(), "{bad:?}");
        }
        let long_id = format!("site/.s3-deploy-pipe/releases/1-{}.json.gz", "a".repeat(65));
        assert!(s.check(Area::State, &long_id).is_err());
    }

    #[test]
    fn a_refusal_names_the_key_and_both_prefixes() {
        let s = Scope::new("b", "site/", "state/");
        let e = s
            .check(Area::State, "other/secret.txt")
            .expect_err("refused");
        let text = e.to_string();
        for part in ["s3://b/other/secret.txt", "s3://b/site/", "s3://b/state/"] {
            assert!(text.contains(part), "{text}");
        }
    }
}
