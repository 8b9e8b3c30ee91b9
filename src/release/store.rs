//! Reading and writing the state and the manifests in the bucket.
//!
//! The state is written with S3 conditional writes: `If-Match` with the ETag it was read with,
//! or `If-None-Match: *` when there was none. When another deploy wrote it in between, S3
//! answers `412 PreconditionFailed` (or `409 ConditionalRequestConflict` while the other write
//! is in flight): the state is read again, the update applied to it again (merging), and
//! written again, up to [`SAVE_ATTEMPTS`] times. Every write is read back, so a store that
//! ignores the headers (Ceph RGW 16 ignores `If-None-Match: *`) cannot lose a release
//! silently: a read-back that shows another state merges and writes again. A store that
//! refuses the condition itself (412 while the state is unchanged: Ceph RGW 16 with a quoted,
//! current ETag) is tried with the ETag unquoted, then without a condition, with a warning
//! that says what guarantee is left; so is one that says it has none (`501 NotImplemented`).

use std::io::{Read, Write};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::{MANIFEST_DIR, MANIFEST_SCHEMA, Manifest, Release, STATE_OBJECT, STATE_SCHEMA, State};
use crate::output::Output;
use crate::s3::{Area, OutOfScope, Writer};

/// Attempts to write the state when other deploys keep writing it first. Each lost race means
/// another deploy finished in between; five in a row would take five deploys of the same
/// prefix finishing within one run's bookkeeping (milliseconds): a runaway loop, not traffic.
pub(crate) const SAVE_ATTEMPTS: usize = 5;
/// A manifest larger than this (uncompressed) is refused when read: 100,000 keys take about
/// 15 MB, so this allows about 1.7 million. It is parsed as it is decompressed, so a
/// compressed "bomb" is refused without holding its bytes.
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;
/// Compressed manifests and `state.json` larger than this are refused before their body is
/// read (a state of 3 million stale keys is about 200 MB).
const MAX_OBJECT_BYTES: i64 = 256 * 1024 * 1024;

/// How a write of the state is conditioned on the state it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    /// `If-Match` with the ETag as read (quoted, as S3 gives it), or `If-None-Match: *`.
    Quoted,
    /// `If-Match` with the ETag without its quotes: some stores compare the header's value
    /// with an unquoted ETag.
    Unquoted,
    /// No condition: the store refuses `If-Match` even with the current ETag.
    Off,
}

impl Condition {
    /// The next form to try after the store refused this one while the state was unchanged.
    fn weaker(self, key: &str, bucket: &str, out: &Output) -> Condition {
        match self {
            Condition::Quoted => Condition::Unquoted,
            Condition::Unquoted | Condition::Off => {
                out.warn(format!(
                    "The store refuses If-Match with the current ETag of s3://{bucket}/{key} (412 while nobody wrote it): the release state is written without a condition and read back to confirm it. Left: a deploy of this prefix that writes at the same moment as this one can still replace this release record; run one deploy of a prefix at a time"
                ));
                Condition::Off
            }
        }
    }
}

/// Where the state lives: the writer's scope names the bucket and the state prefix.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) writer: Writer,
}

/// The state as read, with the ETag to write it back with (`None`: there was none).
#[derive(Debug, Clone, Default)]
pub(crate) struct Loaded {
    pub(crate) state: State,
    pub(crate) etag: Option<String>,
}

/// Errors of the state and the manifests.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{0}")]
    Aws(String),
    #[error("{0}")]
    Invalid(String),
    /// A write the scope refused (a key the state named that the pipe never writes).
    #[error(transparent)]
    OutOfScope(#[from] OutOfScope),
}

fn aws<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
    bucket: &str,
    key: &str,
    err: &SdkError<E>,
) -> StoreError {
    let (code, detail) = crate::s3::error::code_and_detail(err);
    let fix = match code.as_str() {
        "AccessDenied" => format!(
            ": allow s3:GetObject, s3:PutObject and s3:DeleteObject on arn:aws:s3:::{bucket}/{}* for this role, move the state with STATE_PREFIX, or set RELEASE_HISTORY=0 (and no DELETE_GRACE) to keep no state",
            key.rsplit_once('/').map_or("", |(dir, _)| dir).to_string() + "/"
        ),
        _ => String::new(),
    };
    StoreError::Aws(format!("{what} s3://{bucket}/{key}: {detail}{fix}"))
}

impl Store {
    /// The bucket.
    fn bucket(&self) -> &str {
        self.writer.bucket()
    }
    /// The state prefix (ends in `/`).
    pub(crate) fn prefix(&self) -> &str {
        self.writer.scope().state_prefix()
    }

    pub(crate) fn state_key(&self) -> String {
        format!("{}{STATE_OBJECT}", self.prefix())
    }

    /// Read the state; an absent state is an empty one.
    pub(crate) async fn load(&self, deployed_prefix: &str) -> Result<Loaded, StoreError> {
        let key = self.state_key();
        let resp = self
            .writer
            .client()
            .get_object()
            .bucket(self.bucket())
            .key(&key)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(Loaded {
                    state: State {
                        schema: STATE_SCHEMA,
                        prefix: deployed_prefix.to_string(),
                        ..State::default()
                    },
                    etag: None,
                });
            }
            Err(e) => return Err(aws("reading the release state", self.bucket(), &key, &e)),
        };
        let etag = resp.e_tag().map(str::to_string);
        too_large(self.bucket(), &key, resp.content_length())?;
        let body = resp
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Aws(format!("reading s3://{}/{key}: {e}", self.bucket())))?
            .into_bytes();
        let state: State = serde_json::from_slice(&body).map_err(|e| {
            StoreError::Invalid(format!(
                "s3://{}/{key} is not a state this pipe wrote ({e}): restore it from a previous version of the object, or delete it to start a new history (the recorded releases are then forgotten)",
                self.bucket()
            ))
        })?;
        if state.schema > STATE_SCHEMA {
            return Err(StoreError::Invalid(format!(
                "s3://{}/{key} was written by a newer version of this pipe (state schema {}): use that version or a newer one",
                self.bucket(),
                state.schema
            )));
        }
        super::validate::state(&state, self.writer.scope(), &key).map_err(StoreError::Invalid)?;
        Ok(Loaded { state, etag })
    }

    /// Write the state made by `update` from the current one. `update` is called again with
    /// the state as it is now whenever another deploy wrote it first. Every write is read back:
    /// a store that ignores the conditions cannot lose this run's release silently. Returns the
    /// written state.
    pub(crate) async fn save(
        &self,
        mut loaded: Loaded,
        deployed_prefix: &str,
        out: &Output,
        mut update: impl FnMut(&State) -> State,
    ) -> Result<State, StoreError> {
        let key = self.state_key();
        let mut condition = Condition::Quoted;
        for attempt in 1..=SAVE_ATTEMPTS {
            let mut next = update(&loaded.state);
            next.schema = STATE_SCHEMA;
            next.prefix = deployed_prefix.to_string();
            let body = serde_json::to_vec_pretty(&next)
                .map_err(|e| StoreError::Invalid(format!("internal error: {e}")))?;
            let mut req = self
                .writer
                .put_bytes(Area::State, &key, body)?
                .content_type("application/json")
                .cache_control("no-store");
            let sent_etag = loaded.etag.clone();
            req = match (&sent_etag, condition) {
                (_, Condition::Off) => req,
                (None, _) => req.if_none_match("*"),
                (Some(etag), Condition::Quoted) => req.if_match(etag),
                (Some(etag), Condition::Unquoted) => req.if_match(etag.trim_matches('"')),
            };
            let last = attempt == SAVE_ATTEMPTS;
            let err = match req.send().await {
                Ok(_) => {
                    // Read back: the state must now be the one written.
                    let now = self.load(deployed_prefix).await?;
                    if now.state == next {
                        return Ok(next);
                    }
                    if last {
                        return Err(self.lost_race(&key));
                    }
                    out.info(format!(
                        "The release state read back is not the one just written (another deploy wrote it at the same moment, or the store ignored the condition): merging with it (attempt {} of {SAVE_ATTEMPTS})",
                        attempt + 1
                    ));
                    loaded = now;
                    continue;
                }
                Err(e) => e,
            };
            match err.code().unwrap_or_default() {
                c @ ("PreconditionFailed" | "ConditionalRequestConflict") => {
                    let now = self.load(deployed_prefix).await?;
                    let unchanged = sent_etag.is_some() && now.etag == sent_etag;
                    if unchanged && c == "PreconditionFailed" {
                        // Nobody wrote it: the store refused the condition itself (Ceph RGW
                        // 16 refuses If-Match with the current, quoted ETag).
                        condition = condition.weaker(&key, self.bucket(), out);
                    } else if last {
                        return Err(self.lost_race(&key));
                    } else {
                        out.info(format!(
                            "Another deploy wrote the release state of this prefix meanwhile: merging with it (attempt {} of {SAVE_ATTEMPTS})",
                            attempt + 1
                        ));
                    }
                    loaded = now;
                }
                "NotImplemented" if condition != Condition::Off => {
                    out.warn(format!(
                        "The store does not support conditional writes (If-Match / If-None-Match): the release state s3://{}/{key} is written without one and read back to confirm it; two deploys of this prefix finishing at the same moment could still lose one's release record",
                        self.bucket()
                    ));
                    condition = Condition::Off;
                }
                _ => return Err(aws("writing the release state", self.bucket(), &key, &err)),
            }
        }
        Err(self.lost_race(&key))
    }

    fn lost_race(&self, key: &str) -> StoreError {
        StoreError::Aws(format!(
            "s3://{}/{key}: other deploys of this prefix wrote the release state {SAVE_ATTEMPTS} times while this one tried to: run one deploy of a prefix at a time (Bitbucket: a deployment environment, or concurrency: 1)",
            self.bucket()
        ))
    }

    /// A new manifest's key: unique per run, never an existing release's.
    pub(crate) fn manifest_key(&self, id: &str, now_ms: u128) -> String {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        format!("{}{MANIFEST_DIR}{now_ms}-{safe}.json.gz", self.prefix())
    }

    /// Write a manifest (gzip-compressed JSON).
    pub(crate) async fn put_manifest(
        &self,
        key: &str,
        manifest: &Manifest,
    ) -> Result<(), StoreError> {
        let body = encode_manifest(manifest)?;
        self.writer
            .put_bytes(Area::State, key, body)?
            .content_type("application/json")
            .content_encoding("gzip")
            .cache_control("no-store")
            .send()
            .await
            .map_err(|e| aws("writing the release manifest", self.bucket(), key, &e))?;
        Ok(())
    }

    /// Whether anyone can read the state: an unsigned GET of the first byte of `state.json` is
    /// answered 2xx. (A GET rather than a HEAD: both need s3:GetObject on AWS, but some
    /// emulators check a HEAD against another action.) `None` when the answer says neither
    /// (no answer, a 5xx).
    pub(crate) async fn publicly_readable(&self) -> Option<bool> {
        use aws_smithy_runtime_api::client::auth::AuthSchemeId;
        let anonymous = aws_sdk_s3::config::Builder::default()
            .allow_no_auth()
            .auth_scheme_preference([AuthSchemeId::new("noAuth")]);
        let res = self
            .writer
            .client()
            .get_object()
            .bucket(self.bucket())
            .key(self.state_key())
            .range("bytes=0-0")
            .customize()
            .config_override(anonymous)
            .send()
            .await;
        match res {
            Ok(_) => Some(true),
            Err(e) => match e.raw_response().map(|r| r.status().as_u16()) {
                Some(400..=499) => Some(false),
                _ => None,
            },
        }
    }

    /// Read the manifest of `release`, refused unless it is the one this pipe wrote for it.
    pub(crate) async fn release_manifest(&self, release: &Release) -> Result<Manifest, StoreError> {
        let m = self.get_manifest(&release.manifest).await?;
        super::validate::manifest(&m, release, self.writer.scope()).map_err(StoreError::Invalid)?;
        Ok(m)
    }

    /// Read a manifest.
    pub(crate) async fn get_manifest(&self, key: &str) -> Result<Manifest, StoreError> {
        let resp = self
            .writer
            .client()
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| aws("reading the release manifest", self.bucket(), key, &e))?;
        too_large(self.bucket(), key, resp.content_length())?;
        let body = resp
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Aws(format!("reading s3://{}/{key}: {e}", self.bucket())))?
            .into_bytes();
        decode_manifest(&body).map_err(|e| {
            StoreError::Invalid(format!(
                "s3://{}/{key} is not a manifest this pipe wrote ({e})",
                self.bucket()
            ))
        })
    }

    /// Delete objects of the state (manifests of releases dropped from the history, or of a
    /// run whose state could not be written). Best effort: a failed request is a warning. A
    /// key the scope refuses is an error, and nothing of that batch is deleted.
    pub(crate) async fn delete(&self, keys: &[String], out: &Output) -> Result<(), StoreError> {
        for batch in keys.chunks(crate::s3::writer::DELETE_BATCH) {
            let Ok(req) = self.writer.delete(Area::State, batch)? else {
                continue;
            };
            let failed = match req.send().await {
                Ok(r) => r.errors().len(),
                Err(e) => {
                    tracing::debug!(error = %aws_sdk_s3::error::DisplayErrorContext(&e), "deleting old manifests");
                    batch.len()
                }
            };
            if failed > 0 {
                out.warn(format!(
                    "{failed} old release manifest(s) under s3://{}/{}{MANIFEST_DIR} could not be deleted: they stay (harmless; delete them by hand, or allow s3:DeleteObject there)",
                    self.bucket(),
                    self.prefix()
                ));
            }
        }
        Ok(())
    }
}

/// Refuse an object of the state whose size the store says is over [`MAX_OBJECT_BYTES`].
fn too_large(bucket: &str, key: &str, length: Option<i64>) -> Result<(), StoreError> {
    match length {
        Some(n) if n > MAX_OBJECT_BYTES => Err(StoreError::Invalid(format!(
            "s3://{bucket}/{key} is {n} bytes, more than the {MAX_OBJECT_BYTES} a state object of this pipe can be: it was not written by this pipe; restore it from an earlier version, or delete it"
        ))),
        _ => Ok(()),
    }
}

/// gzip-compressed JSON.
pub(crate) fn encode_manifest(m: &Manifest) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(m).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&json)
        .and_then(|()| gz.finish())
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// The reverse of [`encode_manifest`]; refuses a newer schema.
pub(crate) fn decode_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let mut json = flate2::read::GzDecoder::new(bytes).take(MAX_MANIFEST_BYTES);
    let m: Manifest =
        serde_json::from_reader(std::io::BufReader::new(&mut json)).map_err(|e| e.to_string())?;
    if json.limit() == 0 {
        return Err(format!("over {MAX_MANIFEST_BYTES} bytes uncompressed"));
    }
    if m.schema > MANIFEST_SCHEMA {
        return Err(format!(
            "manifest schema {} is newer than this pipe's ({MANIFEST_SCHEMA}): use a newer version of the pipe",
            m.schema
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::Entry;

    #[test]
    fn manifests_round_trip_and_stay_small() {
        let objects: Vec<Entry> = (0..100_000)
            .map(|i| Entry {
                key: format!("assets/chunk-{i:06}.{:08x}.js", i * 7919),
                etag: format!("{:032x}", (i as u128) * 0x9e37_79b9_7f4a_7c15),
                size: 1000 + i,
                fingerprint: "0123456789abcdef".into(),
                version_id: Some(format!("v{i:020}")),
                content_etag: (i % 2 == 0).then(|| format!("{:032x}", i)),
            })
            .collect();
        let m = Manifest {
            schema: MANIFEST_SCHEMA,
            prefix: "site/".into(),
            copy: Default::default(),
            objects,
        };
        let bytes = encode_manifest(&m).expect("encode");
        assert!(bytes.len() < 6_000_000, "{} bytes", bytes.len());
        assert_eq!(decode_manifest(&bytes).expect("decode"), m);
        assert!(decode_manifest(b"not gzip").is_err());
    }
}
