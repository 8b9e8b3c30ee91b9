//! The scoped writer: the only code in the crate that builds a request which writes, copies
//! onto or deletes a key (`s3_writes_go_through_the_writer` below checks the sources).
//!
//! Each method checks its key(s) against the run's [`Scope`] first and returns the SDK's
//! request builder with the bucket and key already set; the caller adds headers and bodies.
//! A key the rule refuses is an [`OutOfScope`] error and no request is built.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::abort_multipart_upload::builders::AbortMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder;
use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::delete_objects::builders::DeleteObjectsFluentBuilder;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::scope::{Area, OutOfScope, Scope};

/// DeleteObjects takes at most 1,000 keys.
pub(crate) const DELETE_BATCH: usize = 1000;

/// What `x-amz-copy-source` encodes in a key: everything but RFC 3986's unreserved characters
/// and `/` (which separates the key's segments, as aws-cli sends it).
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Where a copy reads from: always the same key (a copy onto itself re-applies headers; a
/// copy of an earlier version restores it), so a copy never moves content between keys.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CopyFrom<'a> {
    /// The key's current version.
    Current,
    /// One earlier version of the key.
    Version(&'a str),
}

/// A client bound to one bucket and one [`Scope`].
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    client: Client,
    scope: Scope,
}

impl Writer {
    pub(crate) fn new(client: Client, scope: Scope) -> Writer {
        Writer { client, scope }
    }

    /// The client, for reads (listing, HEAD, GET).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }
    pub(crate) fn bucket(&self) -> &str {
        self.scope.bucket()
    }

    /// The same writer with another client (the bucket's own region).
    pub(crate) fn with_client(&self, client: Client) -> Writer {
        Writer {
            client,
            scope: self.scope.clone(),
        }
    }

    /// PutObject of `key`.
    pub(crate) fn put(&self, area: Area, key: &str) -> Result<PutObjectFluentBuilder, OutOfScope> {
        self.scope.check(area, key)?;
        Ok(self.client.put_object().bucket(self.bucket()).key(key))
    }

    /// PutObject of `key` with `body` from memory, its length and its `Content-MD5` set: the
    /// store verifies the bytes (and buckets with Object Lock require the header).
    pub(crate) fn put_bytes(
        &self,
        area: Area,
        key: &str,
        body: Vec<u8>,
    ) -> Result<PutObjectFluentBuilder, OutOfScope> {
        use base64::Engine;
        use md5::Digest;
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let len = i64::try_from(body.len()).unwrap_or(i64::MAX);
        Ok(self
            .put(area, key)?
            .content_md5(md5)
            .content_length(len)
            .body(aws_sdk_s3::primitives::ByteStream::from(body)))
    }

    /// CreateMultipartUpload of a site key.
    pub(crate) fn create_multipart(
        &self,
        key: &str,
    ) -> Result<CreateMultipartUploadFluentBuilder, OutOfScope> {
        self.scope.check(Area::Site, key)?;
        Ok(self
            .client
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(key))
    }

    /// UploadPart of a multipart upload of a site key.
    pub(crate) fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadPartFluentBuilder, OutOfScope> {
        self.scope.check(Area::Site, key)?;
        Ok(self
            .client
            .upload_part()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id))
    }

    /// CompleteMultipartUpload of a site key.
    pub(crate) fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<CompleteMultipartUploadFluentBuilder, OutOfScope> {
        self.scope.check(Area::Site, key)?;
        Ok(self
            .client
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id))
    }

    /// AbortMultipartUpload of a site key.
    pub(crate) fn abort_multipart(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<AbortMultipartUploadFluentBuilder, OutOfScope> {
        self.scope.check(Area::Site, key)?;
        Ok(self
            .client
            .abort_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id))
    }

    /// CopyObject of a site key onto itself (`from`: its current or an earlier version).
    pub(crate) fn copy(
        &self,
        key: &str,
        from: CopyFrom<'_>,
    ) -> Result<CopyObjectFluentBuilder, OutOfScope> {
        self.scope.check(Area::Site, key)?;
        let mut source = format!(
            "{}/{}",
            self.bucket(),
            percent_encoding::utf8_percent_encode(key, COPY_SOURCE)
        );
        if let CopyFrom::Version(v) = from {
            source.push_str("?versionId=");
            source.extend(percent_encoding::utf8_percent_encode(
                v,
                percent_encoding::NON_ALPHANUMERIC,
            ));
        }
        Ok(self
            .client
            .copy_object()
            .bucket(self.bucket())
            .key(key)
            .copy_source(source))
    }

    /// DeleteObjects (quiet) of at most [`DELETE_BATCH`] full keys, all in `area`. Refused as
    /// a whole when any key is out of scope.
    pub(crate) fn delete(
        &self,
        area: Area,
        keys: &[String],
    ) -> Result<Result<DeleteObjectsFluentBuilder, String>, OutOfScope> {
        for key in keys {
            self.scope.check(area, key)?;
        }
        if keys.len() > DELETE_BATCH {
            return Ok(Err(format!(
                "internal error: {} keys in one DeleteObjects (at most {DELETE_BATCH})",
                keys.len()
            )));
        }
        let objects: Result<Vec<_>, _> = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect();
        let delete =
            objects.and_then(|o| Delete::builder().set_objects(Some(o)).quiet(true).build());
        Ok(match delete {
            Ok(d) => Ok(self.client.delete_objects().bucket(self.bucket()).delete(d)),
            Err(e) => Err(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Writer {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        Writer::new(
            Client::from_conf(conf),
            Scope::new("b", "site/", "site/.s3-deploy-pipe/"),
        )
    }

    #[test]
    fn every_write_is_checked() {
        let w = writer();
        let out = "other/x";
        assert!(w.put(Area::Site, out).is_err());
        assert!(w.put(Area::State, "site/index.html").is_err());
        assert!(w.create_multipart(out).is_err());
        assert!(w.upload_part(out, "u").is_err());
        assert!(w.complete_multipart(out, "u").is_err());
        assert!(w.abort_multipart(out, "u").is_err());
        assert!(w.copy(out, CopyFrom::Current).is_err());
        assert!(
            w.copy("site/.s3-deploy-pipe/state.json", CopyFrom::Current)
                .is_err()
        );
        let keys = vec!["site/a".to_string(), out.to_string()];
        assert!(
            w.delete(Area::Site, &keys).is_err(),
            "one bad key refuses the batch"
        );
        assert!(w.put(Area::Site, "site/a").is_ok());
        assert!(
            w.put(Area::State, "site/.s3-deploy-pipe/state.json")
                .is_ok()
        );
        assert!(matches!(w.delete(Area::Site, &keys[..1]), Ok(Ok(_))));
    }

    #[test]
    fn copy_sources_are_the_same_key_percent_encoded_but_slashes() {
        let w = writer();
        let req = w
            .copy("site/a b/ü+%#?.txt", CopyFrom::Current)
            .expect("in scope");
        assert_eq!(
            req.get_copy_source().as_deref(),
            Some("b/site/a%20b/%C3%BC%2B%25%23%3F.txt")
        );
        let req = w
            .copy("site/a", CopyFrom::Version("v+1/2"))
            .expect("in scope");
        assert_eq!(
            req.get_copy_source().as_deref(),
            Some("b/site/a?versionId=v%2B1%2F2")
        );
    }

    /// Every S3 request that writes is built here and nowhere else: a new call site elsewhere
    /// would bypass the scope, so it fails this test.
    #[test]
    fn s3_writes_go_through_the_writer() {
        const WRITES: [&str; 10] = [
            ".put_object()",
            ".copy_object()",
            ".delete_object()",
            ".delete_objects()",
            ".create_multipart_upload()",
            ".upload_part()",
            ".upload_part_copy()",
            ".complete_multipart_upload()",
            ".abort_multipart_upload()",
            ".put_object_acl()",
        ];
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        for entry in walkdir::WalkDir::new(&src) {
            let entry = entry.expect("walk src");
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("s3/writer.rs") {
                continue;
            }
            let text = std::fs::read_to_string(path).expect("read source");
            for w in WRITES {
                if text.contains(w) {
                    offenders.push(format!("{}: {w}", path.display()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "S3 writes outside src/s3/writer.rs: {offenders:?}"
        );
    }
}
