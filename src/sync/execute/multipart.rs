//! Multipart uploads of large files: create, send the parts (each verified by its
//! Content-MD5), complete with the parts' expected ETag checked, and abort on any failure so
//! that no parts are left behind.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::byte_stream::Length;

use super::{Shared, Target, etag_not_md5, file_md5, put_send_error, size_i64};
use crate::s3::Op;
use crate::s3::error::explain;
use crate::sync::etag::part_size_for;
use crate::sync::headers::{self, apply_headers};
use crate::sync::local::LocalFile;
use crate::sync::open::{Opened, Watch};
use crate::sync::verify::{self, ChecksumAlgo, Md5Sum, SendError, Stored, with_checksum};

/// One part sent: what CompleteMultipartUpload lists, the MD5 of the bytes sent, and whether
/// the store said its ETag is not an MD5 (SSE-KMS, SSE-C).
type SentPart = (CompletedPart, Md5Sum, bool);

/// Upload `f` in parts. The upload is aborted when anything fails (or the run is stopped).
pub(super) async fn upload_multipart(
    shared: &Arc<Shared>,
    f: &LocalFile,
    h: &headers::ObjectHeaders,
    opened: &Opened,
) -> Result<Stored, String> {
    let t = &shared.target;
    let key = t.key(&f.rel);
    let upload_id = create(shared, f, h, &key).await?;
    shared.cancel.track_upload(crate::cancel::OpenUpload {
        bucket: t.bucket.clone(),
        key: key.clone(),
        upload_id: upload_id.clone(),
    });
    let result = match send_parts(shared, f, &key, &upload_id, opened).await {
        // The parts are of the file as it was when opened only if it has not changed since:
        // otherwise the object would mix versions of it. Not completed (aborted below): the
        // previous object stays as it was.
        Ok(_) if !opened.unchanged() => Err(format!(
            "{} changed while its parts were uploaded: the multipart upload is aborted, not completed",
            t.local_name(&f.rel)
        )),
        Ok(parts) => complete(shared, f, &key, &upload_id, parts).await,
        Err(e) => Err(e),
    };
    match &result {
        Ok(_) => shared.cancel.untrack_upload(&upload_id),
        Err(_) if shared.cancel.is_cancelled() => {
            // Stopping: best effort within a short deadline; what is left open is printed.
            let abort = abort_upload(shared, &key, &upload_id);
            if let Ok(true) = tokio::time::timeout(crate::cancel::ABORT_DEADLINE, abort).await {
                shared.cancel.untrack_upload(&upload_id);
            }
        }
        Err(_) => {
            if abort_upload(shared, &key, &upload_id).await {
                shared.cancel.untrack_upload(&upload_id);
            }
        }
    }
    result
}

/// CreateMultipartUpload, with the file's headers; returns the upload ID.
async fn create(
    shared: &Shared,
    f: &LocalFile,
    h: &headers::ObjectHeaders,
    key: &str,
) -> Result<String, String> {
    let t = &shared.target;
    let _permit = shared.permits.acquire().await.map_err(|e| e.to_string())?;
    let req = t
        .writer
        .create_multipart(key)
        .map_err(|e| e.to_string())?
        .set_checksum_algorithm(t.checksum.map(ChecksumAlgo::s3));
    let create = apply_headers!(req, h).send().await.map_err(|e| {
        explain(
            Op::Put,
            &t.bucket,
            Some(key),
            t.group(f).settings.acl.is_some(),
            &e,
        )
    })?;
    create
        .upload_id()
        .map(str::to_string)
        .ok_or_else(|| "CreateMultipartUpload returned no upload ID".to_string())
}

/// Send every part, within the requests in flight the gate allows (shared with the other
/// uploads). The first failure (or a stop) cancels the parts still running.
async fn send_parts(
    shared: &Arc<Shared>,
    f: &LocalFile,
    key: &str,
    upload_id: &str,
    opened: &Opened,
) -> Result<Vec<SentPart>, String> {
    let t = &shared.target;
    let part_size = part_size_for(f.size);
    let parts = f.size.div_ceil(part_size).max(1);
    let mut set = tokio::task::JoinSet::new();
    for n in 0..parts {
        let shared = shared.clone();
        let path = f.path.clone();
        let key = key.to_string();
        let upload_id = upload_id.to_string();
        let offset = n * part_size;
        let len = part_size.min(f.size - offset);
        let what = format!("part {} of {parts} of {}", n + 1, t.local_name(&f.rel));
        let watch = opened.watch();
        set.spawn(async move {
            let part_number = i32::try_from(n + 1).unwrap_or(i32::MAX);
            let part = Part {
                path: &path,
                key: &key,
                upload_id: &upload_id,
                number: part_number,
                offset,
                len,
            };
            send_part(&shared, &part, &what, &watch).await
        });
    }
    let mut sent = Vec::with_capacity(usize::try_from(parts).unwrap_or(0));
    let mut error = None;
    loop {
        let next = tokio::select! {
            n = set.join_next() => n,
            () = shared.cancel.cancelled(), if error.is_none() => {
                error = Some("interrupted".to_string());
                set.abort_all();
                continue;
            }
        };
        let Some(res) = next else { break };
        match res {
            Ok(Ok(part)) => sent.push(part),
            Ok(Err(e)) => {
                if error.is_none() {
                    error = Some(e);
                    set.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => error = error.or(Some(format!("internal error: {e}"))),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(sent),
    }
}

/// One part of a file: which bytes, and where they go.
struct Part<'a> {
    path: &'a std::path::Path,
    key: &'a str,
    upload_id: &'a str,
    number: i32,
    offset: u64,
    len: u64,
}

/// UploadPart of one part, with its Content-MD5, sent again by the verifier when the store
/// got other bytes.
async fn send_part(
    shared: &Shared,
    p: &Part<'_>,
    what: &str,
    watch: &Watch,
) -> Result<SentPart, String> {
    let t = &shared.target;
    let md5 = file_md5(p.path, p.offset, p.len, t.checksum).await?;
    let stored = shared
        .verifier
        .send(
            &shared.out,
            what,
            &md5.hex,
            &|| watch.unchanged(),
            || async {
                let mut permit = shared
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| SendError::Other(e.to_string()))?;
                permit.set_bytes(p.len);
                let body = ByteStream::read_from()
                    .path(p.path)
                    .offset(p.offset)
                    .length(Length::Exact(p.len))
                    .build()
                    .await
                    .map_err(|e| SendError::Other(format!("cannot read the file: {e}")))?;
                let resp = t
                    .writer
                    .upload_part(p.key, p.upload_id)
                    .map_err(|e| SendError::Other(e.to_string()))?
                    .part_number(p.number)
                    .content_length(size_i64(p.len))
                    .content_md5(&md5.base64)
                    .set_checksum_algorithm(t.checksum.map(ChecksumAlgo::s3))
                    .body(body);
                let resp = with_checksum!(resp, t.checksum, md5).send().await;
                match resp {
                    Ok(r) => Ok(Stored {
                        etag: r.e_tag().map(str::to_string),
                        etag_not_md5: etag_not_md5(
                            r.server_side_encryption(),
                            r.sse_customer_algorithm(),
                        ),
                        version_id: None,
                        content_etag: None,
                        checksum_unconfirmed: false,
                    }),
                    Err(e) => Err(put_send_error(
                        explain(Op::Put, &t.bucket, Some(p.key), false, &e),
                        &e,
                    )),
                }
            },
        )
        .await?;
    Ok((
        with_checksum!(
            CompletedPart::builder()
                .part_number(p.number)
                .set_e_tag(stored.etag),
            t.checksum,
            md5
        )
        .build(),
        md5,
        stored.etag_not_md5,
    ))
}

/// CompleteMultipartUpload, and check that the object's ETag is the one these parts make.
async fn complete(
    shared: &Shared,
    f: &LocalFile,
    key: &str,
    upload_id: &str,
    mut sent: Vec<SentPart>,
) -> Result<Stored, String> {
    let t = &shared.target;
    sent.sort_by_key(|(p, _, _)| p.part_number());
    let md5s: Vec<Md5Sum> = sent.iter().map(|(_, m, _)| m.clone()).collect();
    // SSE-KMS or SSE-C: the parts' ETags, and so the object's, are not MD5s.
    let not_md5 = sent.iter().any(|(_, _, n)| *n);
    let completed: Vec<CompletedPart> = sent.into_iter().map(|(p, _, _)| p).collect();
    // What the object's ETag must be: from the MD5s of the bytes we read and sent.
    let expected = verify::multipart_etag(&md5s);
    let _permit = shared.permits.acquire().await.map_err(|e| e.to_string())?;
    let res = t
        .writer
        .complete_multipart(key, upload_id)
        .map_err(|e| e.to_string())?
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await;
    match res {
        Ok(r) => {
            let stored = Stored {
                etag: r.e_tag().map(str::to_string),
                etag_not_md5: not_md5 || etag_not_md5(r.server_side_encryption(), None),
                version_id: r.version_id().map(str::to_string),
                content_etag: None,
                checksum_unconfirmed: false,
            };
            shared
                .verifier
                .check_multipart(&t.local_name(&f.rel), &expected, &stored)
                .map(|()| stored.checked_against(&expected))
        }
        // A retried CompleteMultipartUpload whose first attempt succeeded but whose answer
        // was lost (a stalled connection) meets an upload ID that no longer exists: S3
        // documents NoSuchUpload for "aborted or completed". The object then carries the
        // multipart ETag of exactly these parts: check it.
        Err(e) if aws_sdk_s3::error::ProvideErrorMetadata::code(&e) == Some("NoSuchUpload") => {
            match completed_already(t, key, &expected).await {
                Some(stored) => {
                    tracing::debug!(key, "CompleteMultipartUpload retried after it succeeded");
                    Ok(stored)
                }
                None => Err(explain(Op::Put, &t.bucket, Some(key), false, &e)),
            }
        }
        Err(e) => Err(explain(Op::Put, &t.bucket, Some(key), false, &e)),
    }
}

/// What `key` holds, when it already holds the object these parts make (ETag `expected`).
async fn completed_already(t: &Target, key: &str, expected: &str) -> Option<Stored> {
    match t
        .writer
        .client()
        .head_object()
        .bucket(&t.bucket)
        .key(key)
        .send()
        .await
    {
        Ok(h) if h.e_tag().map(|e| e.trim_matches('"')) == Some(expected) => Some(Stored {
            etag: h.e_tag().map(str::to_string),
            etag_not_md5: false,
            version_id: h.version_id().map(str::to_string),
            content_etag: None,
            checksum_unconfirmed: false,
        }),
        _ => None,
    }
}

/// Abort a multipart upload so that no parts are left behind (and billed). True when done.
async fn abort_upload(shared: &Shared, key: &str, upload_id: &str) -> bool {
    let t = &shared.target;
    let req = match t.writer.abort_multipart(key, upload_id) {
        Ok(req) => req,
        Err(e) => {
            tracing::warn!(key, error = %e, "abort multipart upload refused");
            return false;
        }
    };
    let res = req.send().await;
    match res {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "abort multipart upload failed");
            shared.out.warn(format!(
                "could not abort the multipart upload of s3://{}/{key}: {}",
                t.bucket,
                explain(Op::Put, &t.bucket, Some(key), false, &e)
            ));
            false
        }
    }
}
