//! The headers each object gets, and the fingerprint of the settings that produce them.
//!
//! Rule: every object this pipe writes carries the user-metadata entry
//! [`FINGERPRINT_KEY`] = a hash of the header settings (ACL, storage class, Cache-Control,
//! Expires, Content-Encoding, Content-Type override and guessing, Content-Disposition,
//! Content-Language, metadata, SSE, website redirect). When some objects are unchanged, the
//! pipe HEADs one of them; if its fingerprint differs from the current settings', every
//! unchanged object gets its headers re-applied with CopyObject (`MetadataDirective=REPLACE`),
//! so no bytes are re-uploaded. When nothing changed, this costs one HEAD.

use std::collections::HashMap;

use md5::{Digest, Md5};

use crate::config::HeaderSettings;

/// The user-metadata key that holds the header fingerprint (`x-amz-meta-s3-deploy-pipe-headers`).
pub const FINGERPRINT_KEY: &str = "s3-deploy-pipe-headers";
/// Bumped when the derivation of headers changes (e.g. the MIME table), forcing a re-apply.
const FINGERPRINT_VERSION: &str = "1";

/// The headers of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<aws_smithy_types::DateTime>,
    pub metadata: HashMap<String, String>,
    pub acl: Option<aws_sdk_s3::types::ObjectCannedAcl>,
    pub storage_class: Option<aws_sdk_s3::types::StorageClass>,
    pub sse: Option<aws_sdk_s3::types::ServerSideEncryption>,
    pub sse_kms_key_id: Option<String>,
    pub website_redirect: Option<String>,
}

/// The Content-Type guessed from the extension, as aws-cli does; `None` for unknown extensions.
pub fn guess_content_type(rel: &str) -> Option<String> {
    mime_guess::from_path(rel)
        .first()
        .map(|m| m.essence_str().to_string())
}

/// HTML pages are uploaded last, so they never refer to an asset not yet uploaded.
pub fn is_html(rel: &str) -> bool {
    guess_content_type(rel).as_deref() == Some("text/html")
}

/// A short hash of the header settings.
pub fn fingerprint(s: &HeaderSettings) -> String {
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
pub fn for_file(rel: &str, s: &HeaderSettings, fingerprint: &str) -> ObjectHeaders {
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
        content_encoding: s.content_encoding.clone(),
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

    #[test]
    fn headers_for_a_file() {
        let s = HeaderSettings {
            guess_mime: true,
            cache_control: Some("max-age=60".into()),
            ..Default::default()
        };
        let h = for_file("a.css", &s, "fp");
        assert_eq!(h.content_type.as_deref(), Some("text/css"));
        assert_eq!(
            h.metadata.get(FINGERPRINT_KEY).map(String::as_str),
            Some("fp")
        );
        let none = for_file("a.css", &HeaderSettings::default(), "fp");
        assert_eq!(none.content_type, None);
    }
}
