//! The headers each object gets, and the fingerprint of the settings that produce them.
//!
//! Rule: every object this pipe writes carries the user-metadata entry
//! [`FINGERPRINT_KEY`] = a hash of the header settings (ACL, storage class, Cache-Control,
//! Expires, Content-Encoding, Content-Type override and guessing, Content-Disposition,
//! Content-Language, metadata, SSE, website redirect). When some objects are unchanged, the
//! pipe HEADs the least recently written one of each group; if its fingerprint differs from the
//! current settings', it HEADs one object per kind of file ([`ActualHeaders`]), keeps the kinds
//! that already have the wanted headers, and re-applies the others' with CopyObject
//! (`MetadataDirective=REPLACE`), so no bytes are re-uploaded (see `sync::run` and
//! `plan::sample_order`). When nothing changed, this costs one HEAD.

use std::collections::HashMap;

use md5::{Digest, Md5};

use crate::compress::Compression;
use crate::config::{HeaderRule, HeaderSettings};

/// The user-metadata key that holds the header fingerprint (`x-amz-meta-s3-deploy-pipe-headers`).
pub(crate) const FINGERPRINT_KEY: &str = "s3-deploy-pipe-headers";
/// Bumped when the derivation of headers changes (e.g. the MIME table), forcing a re-apply.
/// 2: `.mjs`, `.woff`, `.otf` types as aws-cli; no `application/octet-stream` on untyped files.
const FINGERPRINT_VERSION: &str = "2";

/// The headers of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ObjectHeaders {
    pub(crate) content_type: Option<String>,
    pub(crate) cache_control: Option<String>,
    pub(crate) content_disposition: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) content_language: Option<String>,
    pub(crate) expires: Option<aws_smithy_types::DateTime>,
    pub(crate) metadata: HashMap<String, String>,
    pub(crate) acl: Option<aws_sdk_s3::types::ObjectCannedAcl>,
    pub(crate) storage_class: Option<aws_sdk_s3::types::StorageClass>,
    pub(crate) sse: Option<aws_sdk_s3::types::ServerSideEncryption>,
    pub(crate) sse_kms_key_id: Option<String>,
    pub(crate) website_redirect: Option<String>,
}

/// Extensions where `mime_guess` and aws-cli disagree and aws-cli's answer is the one users
/// expect. aws-cli guesses with Python's `mimetypes` (its built-in table since Python 3.12, plus
/// the system's `/etc/mime.types` where there is one, e.g. Debian's `media-types`).
/// Differences left alone on purpose: `.map` (aws-cli: none, so `binary/octet-stream`; we say
/// `text/plain`), `.gz` (aws-cli types `app.js.gz` as `text/javascript`; we say
/// `application/gzip`), and `.xml` / `.ico`, where aws-cli's answer depends on the system and
/// both types work in every browser.
const AWS_CLI_TYPES: &[(&str, &str)] = &[
    // RFC 9239 makes text/javascript the JavaScript type; mime_guess already says so for `.js`
    // but still says application/javascript for modules.
    ("mjs", "text/javascript"),
    // RFC 8081's font types; mime_guess has the deprecated application/font-woff and
    // application/font-sfnt.
    ("woff", "font/woff"),
    ("otf", "font/otf"),
];

/// The Content-Type guessed from the extension, as aws-cli does; `None` for unknown extensions.
pub(crate) fn guess_content_type(rel: &str) -> Option<String> {
    let ext = std::path::Path::new(rel)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if let Some((_, t)) = AWS_CLI_TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
    {
        return Some((*t).to_string());
    }
    mime_guess::from_path(rel)
        .first()
        .map(|m| m.essence_str().to_string())
}

/// HTML pages are uploaded last, so they never refer to an asset not yet uploaded.
pub(crate) fn is_html(rel: &str) -> bool {
    guess_content_type(rel).as_deref() == Some("text/html")
}

/// The settings shared by the files that match one rule (or no rule), with their fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) settings: HeaderSettings,
    pub(crate) compress: Option<Compression>,
    pub(crate) fingerprint: String,
}

/// Group 0 is the global settings (files no rule matches); group `i + 1` is rule `i` laid over
/// them: a field the rule sets replaces the global one, `metadata` as a whole.
pub(crate) fn groups(global: &HeaderSettings, rules: &[HeaderRule]) -> Vec<Group> {
    let mut out = vec![Group {
        settings: global.clone(),
        compress: None,
        fingerprint: fingerprint_with(global, None),
    }];
    for r in rules {
        let mut s = global.clone();
        let or = |rule: &Option<String>, global: &mut Option<String>| {
            if rule.is_some() {
                global.clone_from(rule);
            }
        };
        or(&r.cache_control, &mut s.cache_control);
        or(&r.content_type, &mut s.content_type);
        or(&r.content_encoding, &mut s.content_encoding);
        or(&r.content_disposition, &mut s.content_disposition);
        or(&r.acl, &mut s.acl);
        or(&r.storage_class, &mut s.storage_class);
        if let Some(m) = &r.metadata {
            s.metadata.clone_from(m);
        }
        let fingerprint = fingerprint_with(&s, r.compress);
        out.push(Group {
            settings: s,
            compress: r.compress,
            fingerprint,
        });
    }
    out
}

/// The group of a file: the first rule whose pattern matches, else the global group 0.
pub(crate) fn group_of(rel: &str, rules: &[HeaderRule]) -> usize {
    rules
        .iter()
        .position(|r| r.matcher.is_match(rel))
        .map_or(0, |i| i + 1)
}

fn fingerprint_with(s: &HeaderSettings, compress: Option<Compression>) -> String {
    match compress {
        None => fingerprint(s),
        Some(c) => {
            let both = format!("{}+{}", fingerprint(s), c.encoding());
            hex::encode(&Md5::digest(both.as_bytes())[..8])
        }
    }
}

/// A short hash of the header settings.
pub(crate) fn fingerprint(s: &HeaderSettings) -> String {
    let canonical = format!(
        "v{FINGERPRINT_VERSION}\nacl={:?}\nsc={:?}\ncc={:?}\nexp={:?}\nce={:?}\nct={:?}\ncd={:?}\ncl={:?}\nmeta={:?}\nsse={:?}\nkms={:?}\nredir={:?}\nguess={}",
        s.acl,
        s.storage_class,
        s.cache_control,
        s.expires,
        s.content_encoding,
        s.content_type,
        s.content_disposition,
        s.content_language,
        s.metadata,
        s.sse,
        s.sse_kms_key_id,
        s.website_redirect,
        s.guess_mime
    );
    hex::encode(&Md5::digest(canonical.as_bytes())[..8])
}

/// The headers for the object of `rel` under these settings.
pub(crate) fn for_file(rel: &str, group: &Group, encoding: Option<Compression>) -> ObjectHeaders {
    let s = &group.settings;
    let fingerprint = group.fingerprint.as_str();
    let content_type = s.content_type.clone().or_else(|| {
        if s.guess_mime {
            guess_content_type(rel)
        } else {
            None
        }
    });
    let mut metadata: HashMap<String, String> = s
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.insert(FINGERPRINT_KEY.to_string(), fingerprint.to_string());
    ObjectHeaders {
        content_type,
        cache_control: s.cache_control.clone(),
        content_disposition: s.content_disposition.clone(),
        content_encoding: match encoding {
            Some(c) => Some(c.encoding().to_string()),
            None => s.content_encoding.clone(),
        },
        content_language: s.content_language.clone(),
        expires: s.expires.as_deref().and_then(|e| {
            aws_smithy_types::DateTime::from_str(e, aws_smithy_types::date_time::Format::HttpDate)
                .ok()
        }),
        metadata,
        acl: s
            .acl
            .as_deref()
            .map(aws_sdk_s3::types::ObjectCannedAcl::from),
        storage_class: s
            .storage_class
            .as_deref()
            .map(aws_sdk_s3::types::StorageClass::from),
        sse: s
            .sse
            .as_deref()
            .map(aws_sdk_s3::types::ServerSideEncryption::from),
        sse_kms_key_id: s.sse_kms_key_id.clone(),
        website_redirect: s.website_redirect.clone(),
    }
}

/// The headers an object actually has, as HeadObject reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ActualHeaders {
    pub(crate) content_type: Option<String>,
    pub(crate) cache_control: Option<String>,
    pub(crate) content_disposition: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) content_language: Option<String>,
    /// The `Expires` header as sent (an HTTP date).
    pub(crate) expires: Option<String>,
    /// User metadata; S3 lower-cases the names.
    pub(crate) metadata: HashMap<String, String>,
    pub(crate) storage_class: Option<String>,
    pub(crate) sse: Option<String>,
    pub(crate) sse_kms_key_id: Option<String>,
    pub(crate) website_redirect: Option<String>,
}

impl ActualHeaders {
    pub(crate) fn from_head(h: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> Self {
        let s = |v: Option<&str>| v.map(str::to_string);
        ActualHeaders {
            content_type: s(h.content_type()),
            cache_control: s(h.cache_control()),
            content_disposition: s(h.content_disposition()),
            content_encoding: s(h.content_encoding()),
            content_language: s(h.content_language()),
            expires: s(h.expires_string()),
            metadata: h.metadata().cloned().unwrap_or_default(),
            storage_class: h.storage_class().map(|c| c.as_str().to_string()),
            sse: h.server_side_encryption().map(|c| c.as_str().to_string()),
            sse_kms_key_id: s(h.ssekms_key_id()),
            website_redirect: s(h.website_redirect_location()),
        }
    }

    /// The fingerprint this pipe wrote, if any.
    pub(crate) fn fingerprint(&self) -> Option<&str> {
        self.metadata.get(FINGERPRINT_KEY).map(String::as_str)
    }

    /// Whether the object already has exactly the headers `want` gives it (the fingerprint
    /// aside), so that re-applying them would change nothing a client sees. What HeadObject
    /// cannot show (an ACL) never matches: such objects are re-applied as before. Pure.
    pub(crate) fn matches(&self, want: &ObjectHeaders) -> bool {
        // S3 stores this type when a PUT names none (as aws-cli's and ours do).
        const DEFAULT_TYPE: &str = "binary/octet-stream";
        let standard = |c: Option<&str>| c.is_none_or(|c| c == "STANDARD");
        let expires_secs = |e: &str| {
            aws_smithy_types::DateTime::from_str(e, aws_smithy_types::date_time::Format::HttpDate)
                .ok()
                .map(|d| d.secs())
        };
        let lower = |m: &HashMap<String, String>| -> HashMap<String, String> {
            m.iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case(FINGERPRINT_KEY))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        };
        want.acl.is_none()
            && want.content_type.as_deref().unwrap_or(DEFAULT_TYPE)
                == self.content_type.as_deref().unwrap_or(DEFAULT_TYPE)
            && want.cache_control == self.cache_control
            && want.content_disposition == self.content_disposition
            && want.content_encoding == self.content_encoding
            && want.content_language == self.content_language
            && want.expires.map(|d| d.secs()) == self.expires.as_deref().and_then(expires_secs)
            && lower(&want.metadata) == lower(&self.metadata)
            && (standard(want.storage_class.as_ref().map(|c| c.as_str()))
                && standard(self.storage_class.as_deref())
                || want.storage_class.as_ref().map(|c| c.as_str()) == self.storage_class.as_deref())
            // No SSE asked for: whatever the bucket's default encryption applied is fine.
            && want
                .sse
                .as_ref()
                .is_none_or(|s| Some(s.as_str()) == self.sse.as_deref())
            && want
                .sse_kms_key_id
                .as_ref()
                .is_none_or(|k| Some(k) == self.sse_kms_key_id.as_ref())
            && want.website_redirect == self.website_redirect
    }
}

/// Set every header on a PutObject, CreateMultipartUpload or CopyObject request builder.
/// (Their builders share these setter names but no trait.)
macro_rules! apply_headers {
    ($builder:expr, $h:expr) => {{
        let h = $h;
        #[allow(deprecated)]
        let b = $builder
            .set_content_type(h.content_type.clone())
            .set_cache_control(h.cache_control.clone())
            .set_content_disposition(h.content_disposition.clone())
            .set_content_encoding(h.content_encoding.clone())
            .set_content_language(h.content_language.clone())
            .set_expires(h.expires)
            .set_metadata(Some(h.metadata.clone()))
            .set_acl(h.acl.clone())
            .set_storage_class(h.storage_class.clone())
            .set_server_side_encryption(h.sse.clone())
            .set_ssekms_key_id(h.sse_kms_key_id.clone())
            .set_website_redirect_location(h.website_redirect.clone());
        b
    }};
}
pub(crate) use apply_headers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(guess_content_type("a/b.css").as_deref(), Some("text/css"));
        assert_eq!(
            guess_content_type("index.html").as_deref(),
            Some("text/html")
        );
        assert_eq!(guess_content_type("LICENSE"), None);
        assert_eq!(guess_content_type(".htaccess"), None);
        // Where mime_guess differs from aws-cli, aws-cli's answer.
        assert_eq!(
            guess_content_type("m/app.mjs").as_deref(),
            Some("text/javascript")
        );
        assert_eq!(
            guess_content_type("js/app.js").as_deref(),
            Some("text/javascript")
        );
        assert_eq!(guess_content_type("f/a.WOFF").as_deref(), Some("font/woff"));
        assert_eq!(
            guess_content_type("f/a.woff2").as_deref(),
            Some("font/woff2")
        );
        assert_eq!(guess_content_type("f/a.otf").as_deref(), Some("font/otf"));
        assert!(is_html("x/index.htm"));
        assert!(!is_html("x/app.js"));
    }

    #[test]
    fn fingerprint_changes_with_any_setting() {
        let base = HeaderSettings {
            guess_mime: true,
            ..Default::default()
        };
        let fp = fingerprint(&base);
        assert_eq!(fp, fingerprint(&base.clone()));
        let variants = [
            HeaderSettings {
                cache_control: Some("no-cache".into()),
                ..base.clone()
            },
            HeaderSettings {
                acl: Some("public-read".into()),
                ..base.clone()
            },
            HeaderSettings {
                guess_mime: false,
                ..base.clone()
            },
            HeaderSettings {
                metadata: [("a".to_string(), "b".to_string())].into(),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(fingerprint(&v), fp, "{v:?}");
        }
    }

    fn group(s: HeaderSettings) -> Group {
        Group {
            fingerprint: "fp".into(),
            settings: s,
            compress: None,
        }
    }

    #[test]
    fn headers_for_a_file() {
        let s = HeaderSettings {
            guess_mime: true,
            cache_control: Some("max-age=60".into()),
            ..Default::default()
        };
        let h = for_file("a.css", &group(s), None);
        assert_eq!(h.content_type.as_deref(), Some("text/css"));
        assert_eq!(
            h.metadata.get(FINGERPRINT_KEY).map(String::as_str),
            Some("fp")
        );
        let none = for_file("a.css", &group(HeaderSettings::default()), None);
        assert_eq!(none.content_type, None);
        let gz = for_file(
            "a.css",
            &group(HeaderSettings::default()),
            Some(Compression::Gzip),
        );
        assert_eq!(gz.content_encoding.as_deref(), Some("gzip"));
    }

    /// Objects written by `aws s3 sync` with the same settings have no fingerprint but the
    /// same headers: they are adopted without a copy (issue 16, item 2).
    #[test]
    fn actual_headers_match_the_wanted_ones_field_by_field() {
        let s = HeaderSettings {
            guess_mime: true,
            cache_control: Some("max-age=300".into()),
            expires: Some("Thu, 31 Jan 2030 00:00:00 GMT".into()),
            metadata: [("Team".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        let want = for_file("a.css", &group(s.clone()), None);
        let same = ActualHeaders {
            content_type: Some("text/css".into()),
            cache_control: Some("max-age=300".into()),
            expires: Some("Thu, 31 Jan 2030 00:00:00 GMT".into()),
            metadata: [("team".to_string(), "web".to_string())].into(),
            // Bucket default encryption, not asked for: fine.
            sse: Some("AES256".into()),
            ..Default::default()
        };
        assert!(same.matches(&want));
        assert_eq!(same.fingerprint(), None);
        let differ: Vec<(&str, ActualHeaders)> = vec![
            (
                "type",
                ActualHeaders {
                    content_type: Some("text/plain".into()),
                    ..same.clone()
                },
            ),
            (
                "cache",
                ActualHeaders {
                    cache_control: None,
                    ..same.clone()
                },
            ),
            (
                "expires",
                ActualHeaders {
                    expires: Some("Fri, 01 Feb 2030 00:00:00 GMT".into()),
                    ..same.clone()
                },
            ),
            (
                "meta",
                ActualHeaders {
                    metadata: HashMap::new(),
                    ..same.clone()
                },
            ),
            (
                "encoding",
                ActualHeaders {
                    content_encoding: Some("gzip".into()),
                    ..same.clone()
                },
            ),
            (
                "class",
                ActualHeaders {
                    storage_class: Some("STANDARD_IA".into()),
                    ..same.clone()
                },
            ),
            (
                "redirect",
                ActualHeaders {
                    website_redirect: Some("/x".into()),
                    ..same.clone()
                },
            ),
        ];
        for (what, actual) in differ {
            assert!(!actual.matches(&want), "{what}");
        }
        // Untyped files: S3 stores binary/octet-stream, as for our own uploads.
        let plain = HeaderSettings {
            guess_mime: true,
            ..Default::default()
        };
        let untyped = for_file("LICENSE", &group(plain.clone()), None);
        let stored = ActualHeaders {
            content_type: Some("binary/octet-stream".into()),
            ..Default::default()
        };
        assert!(stored.matches(&untyped));
        // An ACL cannot be seen with HeadObject: never adopted.
        let acl = for_file(
            "LICENSE",
            &group(HeaderSettings {
                acl: Some("public-read".into()),
                ..plain
            }),
            None,
        );
        assert!(!stored.matches(&acl));
    }

    fn rule(pattern: &str) -> HeaderRule {
        HeaderRule {
            matcher: crate::filter::Pattern::new(pattern).expect("pattern"),
            cache_control: None,
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            metadata: None,
            acl: None,
            storage_class: None,
            compress: None,
        }
    }

    #[test]
    fn first_matching_rule_wins_and_unset_fields_fall_back() {
        let global = HeaderSettings {
            guess_mime: true,
            cache_control: Some("max-age=300".into()),
            acl: Some("public-read".into()),
            ..Default::default()
        };
        let rules = vec![
            HeaderRule {
                cache_control: Some("no-cache".into()),
                ..rule("*.html")
            },
            HeaderRule {
                cache_control: Some("max-age=31536000, immutable".into()),
                compress: Some(Compression::Br),
                ..rule("assets/*")
            },
            HeaderRule {
                cache_control: Some("never used".into()),
                ..rule("*")
            },
        ];
        assert_eq!(group_of("index.html", &rules), 1);
        assert_eq!(group_of("assets/index.html", &rules), 1, "first match wins");
        assert_eq!(group_of("assets/app.js", &rules), 2);
        assert_eq!(group_of("robots.txt", &rules), 3);
        let none: Vec<HeaderRule> = Vec::new();
        assert_eq!(group_of("robots.txt", &none), 0);
        let g = groups(&global, &rules);
        assert_eq!(g.len(), 4);
        assert_eq!(g[1].settings.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(
            g[1].settings.acl.as_deref(),
            Some("public-read"),
            "fall back to the global ACL"
        );
        assert_eq!(g[2].compress, Some(Compression::Br));
        let fps: std::collections::HashSet<_> = g.iter().map(|x| x.fingerprint.clone()).collect();
        assert_eq!(fps.len(), 4, "each group has its own fingerprint");
    }
}
