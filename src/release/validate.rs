//! The release state is input: anyone who can write the bucket can change it, and a store can
//! return it damaged. Before a run acts on `state.json` or a manifest, this checks that it has
//! the form the pipe writes: bounded sizes, manifests of this state prefix only, the deployed
//! prefix it was written for. A state that fails is refused with the object's key and the
//! reason, before anything is written.

use super::{Manifest, Release, State};
use crate::s3::Scope;
use crate::s3::scope::MAX_KEY_BYTES;

/// At most this many releases in a state: `RELEASE_HISTORY` allows 1,000, and a state merged
/// by concurrent deploys can briefly hold a few more.
pub(crate) const MAX_RELEASES: usize = 2_000;
/// Ids (`BITBUCKET_BUILD_NUMBER` and its `.2` suffixes, or a time), commits, kinds.
pub(crate) const MAX_FIELD_CHARS: usize = 128;
/// Stale keys waiting for `DELETE_GRACE`: as many as a manifest can hold.
pub(crate) const MAX_STALE_KEYS: usize = 3_000_000;

/// Refuse a state this pipe could not have written for this scope. `key`: the state object.
pub(crate) fn state(state: &State, scope: &Scope, key: &str) -> Result<(), String> {
    let refuse = |reason: String| {
        Err(format!(
            "s3://{}/{key} is not a release state this pipe wrote for this prefix: {reason}. Nothing was written. Restore the object from an earlier version, or delete it to start a new history (the recorded releases are then forgotten)",
            scope.bucket()
        ))
    };
    if state.prefix != scope.site_prefix() {
        return refuse(format!(
            "it is the state of prefix {:?}, not of {:?} (two deploys share one STATE_PREFIX: give each its own)",
            clip(&state.prefix),
            scope.site_prefix()
        ));
    }
    if state.releases.len() > MAX_RELEASES {
        return refuse(format!(
            "it lists {} releases, more than the {MAX_RELEASES} it can hold",
            state.releases.len()
        ));
    }
    if state.stale.len() > MAX_STALE_KEYS {
        return refuse(format!(
            "it lists {} stale keys, more than {MAX_STALE_KEYS}",
            state.stale.len()
        ));
    }
    for r in &state.releases {
        if let Err(reason) = release(r, scope) {
            return refuse(format!("release {:?}: {reason}", clip(&r.id)));
        }
    }
    if let Some(k) = state.stale.keys().find(|k| !relative_key(k)) {
        return refuse(format!(
            "the stale key {:?} is not a key of the prefix",
            clip(k)
        ));
    }
    Ok(())
}

fn release(r: &Release, scope: &Scope) -> Result<(), String> {
    for (name, value) in [
        ("id", Some(r.id.as_str())),
        ("commit", r.commit.as_deref()),
        ("kind", Some(r.kind.as_str())),
        ("rollback_of", r.rollback_of.as_deref()),
    ] {
        if let Some(v) = value
            && (v.chars().count() > MAX_FIELD_CHARS || v.chars().any(char::is_control))
        {
            return Err(format!(
                "its {name} is over {MAX_FIELD_CHARS} characters or has control characters"
            ));
        }
    }
    if r.id.is_empty() {
        return Err("its id is empty".to_string());
    }
    if !scope.is_manifest_key(&r.manifest) {
        return Err(format!(
            "its manifest {:?} is not a manifest key below {} (releases/<time>-<id>.json.gz)",
            clip(&r.manifest),
            scope.state_prefix()
        ));
    }
    Ok(())
}

/// Refuse a manifest this pipe could not have written for `release` of this scope.
pub(crate) fn manifest(m: &Manifest, release: &Release, scope: &Scope) -> Result<(), String> {
    let refuse = |reason: String| {
        Err(format!(
            "s3://{}/{} is not the manifest of release {} that this pipe wrote: {reason}; nothing was changed",
            scope.bucket(),
            release.manifest,
            clip(&release.id)
        ))
    };
    if m.prefix != scope.site_prefix() {
        return refuse(format!(
            "it is of prefix {:?}, not {:?}",
            clip(&m.prefix),
            scope.site_prefix()
        ));
    }
    if m.objects.len() != release.objects {
        return refuse(format!(
            "it lists {} objects, and state.json says the release had {}",
            m.objects.len(),
            release.objects
        ));
    }
    if let Some(e) = m.objects.iter().find(|e| !relative_key(&e.key)) {
        return refuse(format!("{:?} is not a key of the prefix", clip(&e.key)));
    }
    if m.objects.windows(2).any(|w| w[0].key >= w[1].key) {
        return refuse("its keys are not sorted and unique".to_string());
    }
    if let Some(e) = m
        .objects
        .iter()
        .find(|e| e.content_etag.as_deref().is_some_and(|c| !etag_form(c)))
    {
        return refuse(format!(
            "the content ETag of {:?} is not an MD5 or a multipart ETag",
            clip(&e.key)
        ));
    }
    Ok(())
}

/// 32 lowercase hex digits, optionally `-<parts>` (1 to 10,000, S3's limit): the ETag forms a
/// content ETag can have.
fn etag_form(e: &str) -> bool {
    let (md5, parts) = match e.split_once('-') {
        Some((h, n)) => (h, Some(n)),
        None => (e, None),
    };
    md5.len() == 32
        && md5.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && parts.is_none_or(|n| {
            !n.starts_with('0') && n.parse::<u32>().is_ok_and(|n| (1..=10_000).contains(&n))
        })
}

/// A key relative to the deployed prefix, as the pipe records one.
fn relative_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY_BYTES
        && !k.chars().any(char::is_control)
        && !k.split('/').any(|s| s == "." || s == "..")
}

/// At most 80 characters of a value from the bucket, for a message.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::Entry;

    fn scope() -> Scope {
        Scope::new("b", "site/", "site/.s3-deploy-pipe/")
    }

    fn rel(id: &str, manifest: &str) -> Release {
        Release {
            objects: 1,
            manifest: manifest.into(),
            ..Release::for_test(id)
        }
    }

    fn good() -> State {
        State {
            schema: 1,
            prefix: "site/".into(),
            releases: vec![rel("1", "site/.s3-deploy-pipe/releases/1-1.json.gz")],
            stale: [("old.css".to_string(), 5)].into(),
        }
    }

    #[test]
    fn a_state_the_pipe_wrote_passes() {
        assert_eq!(state(&good(), &scope(), "k"), Ok(()));
    }

    #[test]
    fn tampered_states_are_refused_with_the_reason() {
        type Tamper = Box<dyn Fn(&mut State)>;
        let cases: Vec<(&str, Tamper)> = vec![
            (
                "other/secret.txt",
                Box::new(|s| s.releases[0].manifest = "other/secret.txt".into()),
            ),
            (
                "site/index.html",
                Box::new(|s| s.releases[0].manifest = "site/index.html".into()),
            ),
            (
                "other/.s3-deploy-pipe/state.json",
                Box::new(|s| s.releases[0].manifest = "other/.s3-deploy-pipe/state.json".into()),
            ),
            ("not of \"site/\"", Box::new(|s| s.prefix = "other/".into())),
            (
                "over 128",
                Box::new(|s| s.releases[0].id = "9".repeat(100_000)),
            ),
            (
                "control",
                Box::new(|s| s.releases[0].commit = Some("a\n✔ forged".into())),
            ),
            (
                "id is empty",
                Box::new(|s| s.releases[0].id = String::new()),
            ),
            (
                "../x",
                Box::new(|s| {
                    s.stale.insert("../x".into(), 0);
                }),
            ),
            (
                "releases",
                Box::new(|s| {
                    let r = s.releases[0].clone();
                    s.releases = vec![r; MAX_RELEASES + 1];
                }),
            ),
        ];
        for (needle, tamper) in cases {
            let mut s = good();
            tamper(&mut s);
            let e = state(&s, &scope(), "site/.s3-deploy-pipe/state.json").expect_err(needle);
            assert!(e.contains(needle), "{needle}: {e}");
            assert!(e.contains("s3://b/site/.s3-deploy-pipe/state.json"), "{e}");
        }
    }

    #[test]
    fn manifests_must_match_their_release() {
        let r = rel("1", "site/.s3-deploy-pipe/releases/1-1.json.gz");
        let entry = |k: &str| Entry {
            key: k.into(),
            etag: "e".into(),
            size: 1,
            fingerprint: String::new(),
            version_id: Some("v".into()),
            content_etag: None,
        };
        let m = Manifest {
            schema: 1,
            prefix: "site/".into(),
            copy: Default::default(),
            objects: vec![entry("a")],
        };
        assert_eq!(manifest(&m, &r, &scope()), Ok(()));
        let empty = Manifest {
            objects: vec![],
            ..m.clone()
        };
        assert!(
            manifest(&empty, &r, &scope())
                .expect_err("count")
                .contains("0 objects")
        );
        let escape = Manifest {
            objects: vec![entry("../other/x")],
            ..m.clone()
        };
        assert!(manifest(&escape, &r, &scope()).is_err());
        for (content, ok) in [
            ("0123456789abcdef0123456789abcdef", true),
            ("0123456789abcdef0123456789abcdef-2", true),
            ("0123456789abcdef0123456789abcdef-10000", true),
            ("0123456789abcdef0123456789abcdef-0", false),
            ("0123456789abcdef0123456789abcdef-10001", false),
            ("0123456789ABCDEF0123456789abcdef", false),
            ("0123456789abcdef", false),
            ("../../x", false),
        ] {
            let mut e = entry("a");
            e.content_etag = Some(content.into());
            let with = Manifest {
                objects: vec![e],
                ..m.clone()
            };
            assert_eq!(manifest(&with, &r, &scope()).is_ok(), ok, "{content}");
        }
        let other = Manifest {
            prefix: "other/".into(),
            ..m
        };
        assert!(manifest(&other, &r, &scope()).is_err());
    }
}
