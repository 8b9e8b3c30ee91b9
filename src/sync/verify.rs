//! Every byte verified: each PutObject and UploadPart carries `Content-MD5`, and the ETag S3
//! answers is compared with the MD5 of the bytes sent.
//!
//! Two checks, by two parties:
//! - **The store** recomputes the MD5 of what it received and refuses the write with
//!   `400 BadDigest` when it differs from `Content-MD5` (S3 and the S3-compatible stores that
//!   implement the header: MinIO, Ceph RGW, Cloudflare R2, Google Cloud Storage, Backblaze B2,
//!   Wasabi). Content-MD5 is part of the S3 API since its first version, unlike the newer
//!   `x-amz-checksum-*` headers (sent too with `--checksum-algorithm`), which many stores lack.
//! - **The pipe** compares the ETag of the answer with the MD5 it computed: for a single PUT
//!   the ETag is the MD5 of the object; for a part, of the part; for a completed multipart
//!   upload, the MD5 of the parts' MD5s and `-N`. This catches a store (or an emulator) that
//!   ignores Content-MD5, and a proxy that changed the body.
//!
//! A `BadDigest` or a mismatching ETag is retried: the bytes are read and sent again, up to
//! [`VERIFY_ATTEMPTS`] times in all, then the upload fails and is reported. The ETag is not an
//! MD5 with SSE-KMS, DSSE-KMS or SSE-C (the answer says so), nor on a store whose ETags are
//! random per write (some stores that encrypt at rest): two attempts that give two different
//! ETags for the same bytes show that, and from then on this run relies on Content-MD5 alone,
//! with one warning.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use md5::{Digest, Md5};

use crate::output::Output;

/// Attempts in all for one PUT or part whose bytes were not stored as sent.
pub(crate) const VERIFY_ATTEMPTS: usize = 3;

/// The MD5 of bytes about to be sent: hex (to compare with ETags) and base64 (`Content-MD5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Md5Sum {
    pub(crate) hex: String,
    pub(crate) base64: String,
    pub(crate) raw: [u8; 16],
    /// The `--checksum-algorithm` checksum of the same bytes (base64), when one is asked for.
    pub(crate) extra: Option<String>,
}

/// A `--checksum-algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChecksumAlgo {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgo {
    /// From `--checksum-algorithm`'s value (the config accepts these names only).
    pub(crate) fn parse(name: &str) -> Option<ChecksumAlgo> {
        Some(match name.to_ascii_uppercase().as_str() {
            "CRC32" => ChecksumAlgo::Crc32,
            "CRC32C" => ChecksumAlgo::Crc32c,
            "CRC64NVME" => ChecksumAlgo::Crc64Nvme,
            "SHA1" => ChecksumAlgo::Sha1,
            "SHA256" => ChecksumAlgo::Sha256,
            _ => return None,
        })
    }

    /// The algorithm as S3's requests name it.
    pub(crate) fn s3(self) -> aws_sdk_s3::types::ChecksumAlgorithm {
        use aws_sdk_s3::types::ChecksumAlgorithm as A;
        match self {
            ChecksumAlgo::Crc32 => A::Crc32,
            ChecksumAlgo::Crc32c => A::Crc32C,
            ChecksumAlgo::Crc64Nvme => A::Crc64Nvme,
            ChecksumAlgo::Sha1 => A::Sha1,
            ChecksumAlgo::Sha256 => A::Sha256,
        }
    }

    fn implementation(self) -> Box<dyn aws_smithy_checksums::http::HttpChecksum> {
        use aws_smithy_checksums::ChecksumAlgorithm as A;
        match self {
            ChecksumAlgo::Crc32 => A::Crc32,
            ChecksumAlgo::Crc32c => A::Crc32c,
            ChecksumAlgo::Crc64Nvme => A::Crc64Nvme,
            ChecksumAlgo::Sha1 => A::Sha1,
            ChecksumAlgo::Sha256 => A::Sha256,
        }
        .into_impl()
    }
}

/// Set `--checksum-algorithm` and the checksum of the body (`sum.extra`) on a PutObject or
/// UploadPart request (or a CompletedPart), as aws-cli sends them: the value itself, so that
/// S3 checks it, not the algorithm alone (which S3 refuses).
macro_rules! with_checksum {
    ($req:expr, $algo:expr, $sum:expr) => {{
        let req = $req;
        match ($algo, $sum.extra.clone()) {
            (Some(algo), Some(value)) => {
                use $crate::sync::verify::ChecksumAlgo as C;
                match algo {
                    C::Crc32 => req.checksum_crc32(value),
                    C::Crc32c => req.checksum_crc32_c(value),
                    C::Crc64Nvme => req.checksum_crc64_nvme(value),
                    C::Sha1 => req.checksum_sha1(value),
                    C::Sha256 => req.checksum_sha256(value),
                }
            }
            _ => req,
        }
    }};
}
pub(crate) use with_checksum;

/// The `--checksum-algorithm` checksum, computed alongside the MD5.
struct Extra(Option<Box<dyn aws_smithy_checksums::http::HttpChecksum>>);

impl Extra {
    fn new(algo: Option<ChecksumAlgo>) -> Extra {
        Extra(algo.map(ChecksumAlgo::implementation))
    }
    fn update(&mut self, bytes: &[u8]) {
        if let Some(c) = &mut self.0 {
            c.update(bytes);
        }
    }
    fn finish(self) -> Option<String> {
        self.0
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c.finalize()))
    }
}

impl Md5Sum {
    fn from_hasher(h: Md5, extra: Extra) -> Md5Sum {
        let raw: [u8; 16] = h.finalize().into();
        Md5Sum {
            hex: hex::encode(raw),
            base64: base64::engine::general_purpose::STANDARD.encode(raw),
            raw,
            extra: extra.finish(),
        }
    }

    #[cfg(test)]
    pub(crate) fn of(bytes: &[u8]) -> Md5Sum {
        Md5Sum::of_with(bytes, None)
    }

    /// The MD5 of `bytes`, and their `algo` checksum.
    pub(crate) fn of_with(bytes: &[u8], algo: Option<ChecksumAlgo>) -> Md5Sum {
        let mut h = Md5::new();
        let mut extra = Extra::new(algo);
        h.update(bytes);
        extra.update(bytes);
        Md5Sum::from_hasher(h, extra)
    }

    #[cfg(test)]
    pub(crate) fn of_file_range(path: &Path, offset: u64, len: u64) -> std::io::Result<Md5Sum> {
        Md5Sum::of_file_range_with(path, offset, len, None)
    }

    /// The MD5 (and `algo` checksum) of `len` bytes of the file at `offset` (blocking: call
    /// from `spawn_blocking`). Fails when the file has fewer bytes than that: it changed since
    /// it was scanned.
    pub(crate) fn of_file_range_with(
        path: &Path,
        offset: u64,
        len: u64,
        algo: Option<ChecksumAlgo>,
    ) -> std::io::Result<Md5Sum> {
        let mut extra = Extra::new(algo);
        let mut f = super::open::open_regular(path, None)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut h = Md5::new();
        let mut left = len;
        let mut buf = vec![0u8; 256 * 1024];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file is shorter than when it was scanned",
                ));
            }
            h.update(&buf[..n]);
            extra.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(Md5Sum::from_hasher(h, extra))
    }
}

/// The ETag of a multipart upload completed from parts with these MD5s.
pub(crate) fn multipart_etag(parts: &[Md5Sum]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p.raw);
    }
    format!("{}-{}", hex::encode(h.finalize()), parts.len())
}

/// What the store answered to a write.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) etag: Option<String>,
    /// SSE-KMS, DSSE-KMS or SSE-C: the ETag is not an MD5 of the content.
    pub(crate) etag_not_md5: bool,
    /// The new version's id, in a versioned bucket.
    pub(crate) version_id: Option<String>,
    /// The ETag these bytes have where ETags are MD5s, when the store's is not it (see
    /// [`Stored::checked_against`]): the release manifest records it.
    pub(crate) content_etag: Option<String>,
    /// `--checksum-algorithm`'s checksum was sent, and the answer did not echo it back (AWS
    /// does; Ceph RGW 16 accepts it and neither checks nor stores it).
    pub(crate) checksum_unconfirmed: bool,
}

/// Whether a PutObject answer carries the checksum of `algo`: S3 returns the checksum it
/// computed and checked (`x-amz-checksum-*`).
pub(crate) fn checksum_echoed(
    algo: ChecksumAlgo,
    r: &aws_sdk_s3::operation::put_object::PutObjectOutput,
) -> bool {
    match algo {
        ChecksumAlgo::Crc32 => r.checksum_crc32().is_some(),
        ChecksumAlgo::Crc32c => r.checksum_crc32_c().is_some(),
        ChecksumAlgo::Crc64Nvme => r.checksum_crc64_nvme().is_some(),
        ChecksumAlgo::Sha1 => r.checksum_sha1().is_some(),
        ChecksumAlgo::Sha256 => r.checksum_sha256().is_some(),
    }
}

impl Stored {
    /// This answer, knowing the content's ETag `expected` (an MD5, or a multipart ETag):
    /// `content_etag` is set when the store's ETag is something else.
    pub(crate) fn checked_against(mut self, expected: &str) -> Stored {
        // No ETag in the answer (Ceph RGW 16 completes a multipart upload with an empty one)
        // says nothing about the stored one: the listing will tell.
        let differs = self
            .etag
            .as_deref()
            .map(|e| e.trim_matches('"'))
            .is_some_and(|e| !e.is_empty() && !e.eq_ignore_ascii_case(expected));
        self.content_etag = differs.then(|| expected.to_ascii_lowercase());
        self
    }
}

/// A write that failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The store refused the bytes: they differ from `Content-MD5` (`BadDigest`).
    BadDigest(String),
    /// Anything else, already explained.
    Other(String),
}

/// What this run learned of the store's ETags, shared by every upload.
#[derive(Debug, Default)]
pub(crate) struct Verifier {
    /// Set once the store gave two different ETags for the same bytes.
    random_etags: AtomicBool,
    /// Set once an answer did not confirm the `--checksum-algorithm` checksum (said once).
    unconfirmed_checksum: AtomicBool,
}

/// Whether `etag` (quotes allowed) is the MD5 hex `expected`, is something else, or says
/// nothing about it.
#[derive(Debug, PartialEq, Eq)]
enum EtagCheck {
    Equal,
    Differs(String),
    Unknown,
}

fn check_etag(expected: &str, stored: &Stored) -> EtagCheck {
    if stored.etag_not_md5 {
        return EtagCheck::Unknown;
    }
    match stored.etag.as_deref().map(|e| e.trim_matches('"')) {
        None | Some("") => EtagCheck::Unknown,
        Some(e) if e.eq_ignore_ascii_case(expected) => EtagCheck::Equal,
        // Not an MD5 at all (a store's own ETag scheme): it says nothing about the bytes.
        Some(e) if !is_md5_hex(e) && !is_s3_multipart_etag(e) => EtagCheck::Unknown,
        Some(e) => EtagCheck::Differs(e.to_string()),
    }
}

impl Verifier {
    /// Send with `send` (which sets `Content-MD5` from the same bytes) until the store holds
    /// exactly the bytes whose MD5 is `expected`; `what` names them in messages ("a.css",
    /// "part 3 of big.bin"). `unchanged` tells whether the source still holds the bytes that
    /// were hashed: two different ETags for a source that changed meanwhile fail this upload,
    /// and say nothing about the store. Returns the store's answer.
    pub(crate) async fn send<F, Fut>(
        &self,
        out: &Output,
        what: &str,
        expected: &str,
        unchanged: &(dyn Fn() -> bool + Sync),
        mut send: F,
    ) -> Result<Stored, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Stored, SendError>>,
    {
        let mut seen: Vec<String> = Vec::new();
        let mut last = String::new();
        for attempt in 1..=VERIFY_ATTEMPTS {
            let problem = match send().await {
                Err(SendError::Other(msg)) => return Err(msg),
                Err(SendError::BadDigest(msg)) => format!(
                    "the store refused the bytes of {what}: they changed on the way (BadDigest: {msg})"
                ),
                Ok(stored) => {
                    let stored = stored.checked_against(expected);
                    if stored.checksum_unconfirmed
                        && !self.unconfirmed_checksum.swap(true, Ordering::Relaxed)
                    {
                        out.warn(format!(
                            "The store accepted {what} without confirming its --checksum-algorithm checksum (its answer carries no x-amz-checksum-* header, as AWS's does): it may not check them (Ceph RGW 16 does not); uploads there are verified by Content-MD5 only"
                        ));
                    }
                    if self.random_etags.load(Ordering::Relaxed) {
                        return Ok(stored);
                    }
                    match check_etag(expected, &stored) {
                        EtagCheck::Equal | EtagCheck::Unknown => return Ok(stored),
                        EtagCheck::Differs(etag) => {
                            if seen.iter().any(|s| s == &etag) {
                                return Err(format!(
                                    "the store keeps storing other bytes than were sent for {what}: ETag {etag} on every attempt, expected the MD5 {expected}; check proxies between the runner and the store"
                                ));
                            }
                            if !unchanged() {
                                return Err(format!(
                                    "{what} changed while it was uploaded (the store holds other bytes than were hashed: ETag {etag}, expected the MD5 {expected})"
                                ));
                            }
                            if !seen.is_empty() {
                                // Two different ETags for the same bytes: not MD5s.
                                self.random_etags.store(true, Ordering::Relaxed);
                                out.warn(format!(
                                    "the store's ETags are not MD5s of the content (it gave {} and {etag} for the same bytes of {what}): for the rest of this run uploads are verified by the store's Content-MD5 check only",
                                    seen[0]
                                ));
                                return Ok(stored);
                            }
                            seen.push(etag.clone());
                            format!(
                                "the store holds other bytes than were sent for {what}: ETag {etag}, expected the MD5 {expected}"
                            )
                        }
                    }
                }
            };
            if attempt < VERIFY_ATTEMPTS {
                out.warn(format!(
                    "{problem}; sending it again (attempt {} of {VERIFY_ATTEMPTS})",
                    attempt + 1
                ));
            }
            last = problem;
        }
        Err(format!("{last} ({VERIFY_ATTEMPTS} attempts)"))
    }
}

impl Verifier {
    /// Check the ETag of a completed multipart upload against the MD5 of the parts' MD5s.
    /// Not retried: the parts were each verified; a mismatch here means the store assembled
    /// other parts, and the upload fails (the next run uploads the file again).
    pub(crate) fn check_multipart(
        &self,
        what: &str,
        expected: &str,
        stored: &Stored,
    ) -> Result<(), String> {
        if self.random_etags.load(Ordering::Relaxed) {
            return Ok(());
        }
        match check_etag(expected, stored) {
            EtagCheck::Equal | EtagCheck::Unknown => Ok(()),
            // Only S3's own form (`<32 hex>-N`) can be checked: a store that builds multipart
            // ETags its own way says nothing about the bytes (each part was verified).
            EtagCheck::Differs(etag) if !is_s3_multipart_etag(&etag) => Ok(()),
            EtagCheck::Differs(etag) => Err(format!(
                "the store completed {what} as other bytes than were sent: ETag {etag}, expected {expected}"
            )),
        }
    }
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<32 hex digits>-<parts>`: the form S3 gives a multipart object's ETag.
fn is_s3_multipart_etag(etag: &str) -> bool {
    etag.split_once('-').is_some_and(|(h, n)| {
        h.len() == 32
            && h.bytes().all(|b| b.is_ascii_hexdigit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Whether an S3 error code means the bytes did not match `Content-MD5`.
pub(crate) fn is_bad_digest(code: Option<&str>) -> bool {
    code == Some("BadDigest")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn stored(etag: &str) -> Stored {
        Stored {
            etag: Some(format!("\"{etag}\"")),
            etag_not_md5: false,
            version_id: None,
            content_etag: None,
            checksum_unconfirmed: false,
        }
    }

    #[test]
    fn sums_and_multipart_etags() {
        let s = Md5Sum::of(b"hello");
        assert_eq!(s.hex, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(s.base64, "XUFAKrxLKna5cZ2REBfFkg==");
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        std::fs::write(&p, b"xxhelloyy").expect("write");
        assert_eq!(Md5Sum::of_file_range(&p, 2, 5).expect("range"), s);
        assert!(Md5Sum::of_file_range(&p, 5, 10).is_err(), "short file");
        // Two parts "a" and "b": md5(md5("a") ++ md5("b"))-2, as S3 computes it.
        let etag = multipart_etag(&[Md5Sum::of(b"a"), Md5Sum::of(b"b")]);
        let mut both = Vec::new();
        both.extend_from_slice(&Md5Sum::of(b"a").raw);
        both.extend_from_slice(&Md5Sum::of(b"b").raw);
        assert_eq!(etag, format!("{}-2", Md5Sum::of(&both).hex));
    }

    #[test]
    fn content_etags_only_where_the_stored_etag_differs() {
        let md5 = "5d41402abc4b2a76b9719d911017c592";
        assert_eq!(stored(md5).checked_against(md5).content_etag, None);
        assert_eq!(
            stored(&md5.to_uppercase())
                .checked_against(md5)
                .content_etag,
            None
        );
        let kms = stored("0000000000000000000000000000000a").checked_against(md5);
        assert_eq!(kms.content_etag.as_deref(), Some(md5));
        assert_eq!(stored("").checked_against(md5).content_etag, None);
        let none = Stored {
            etag: None,
            ..stored(md5)
        };
        assert_eq!(none.checked_against(md5).content_etag, None);
    }

    #[test]
    fn etag_checks() {
        let md5 = "5d41402abc4b2a76b9719d911017c592";
        assert_eq!(check_etag(md5, &stored(md5)), EtagCheck::Equal);
        assert_eq!(
            check_etag(md5, &stored("00000000000000000000000000000000")),
            EtagCheck::Differs("00000000000000000000000000000000".into())
        );
        assert_eq!(
            check_etag(md5, &stored("crc-2a9f01")),
            EtagCheck::Unknown,
            "a store's own scheme"
        );
        let kms = Stored {
            etag_not_md5: true,
            ..stored("ffff")
        };
        assert_eq!(check_etag(md5, &kms), EtagCheck::Unknown);
    }

    fn run<F>(v: &Verifier, answers: Vec<Result<Stored, SendError>>, f: F)
    where
        F: FnOnce(Result<Stored, String>, usize),
    {
        run_changing(v, answers, false, f);
    }

    /// As [`run`]; `changed`: the source changed since it was hashed.
    fn run_changing<F>(v: &Verifier, answers: Vec<Result<Stored, SendError>>, changed: bool, f: F)
    where
        F: FnOnce(Result<Stored, String>, usize),
    {
        let answers = Mutex::new(answers.into_iter());
        let calls = Mutex::new(0usize);
        let out = Output::new(false, crate::output::Redactor::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let res = rt.block_on(v.send(
            &out,
            "a.css",
            "5d41402abc4b2a76b9719d911017c592",
            &|| !changed,
            || async {
                *calls.lock().expect("lock") += 1;
                answers
                    .lock()
                    .expect("lock")
                    .next()
                    .unwrap_or(Err(SendError::Other("no more answers".into())))
            },
        ));
        f(res, *calls.lock().expect("lock"));
    }

    #[test]
    fn mismatches_and_bad_digests_are_sent_again() {
        let good = "5d41402abc4b2a76b9719d911017c592";
        let bad = "00000000000000000000000000000000";
        let v = Verifier::default();
        run(&v, vec![Ok(stored(bad)), Ok(stored(good))], |r, calls| {
            assert!(r.is_ok());
            assert_eq!(calls, 2);
        });
        run(
            &v,
            vec![Err(SendError::BadDigest("x".into())), Ok(stored(good))],
            |r, calls| {
                assert!(r.is_ok());
                assert_eq!(calls, 2);
            },
        );
        // The same wrong ETag twice: the store keeps other bytes; fail.
        run(&v, vec![Ok(stored(bad)), Ok(stored(bad))], |r, calls| {
            let e = r.expect_err("persistent mismatch");
            assert!(e.contains("on every attempt"), "{e}");
            assert_eq!(calls, 2);
        });
        run(
            &v,
            vec![
                Err(SendError::BadDigest("x".into())),
                Err(SendError::BadDigest("x".into())),
                Err(SendError::BadDigest("x".into())),
            ],
            |r, calls| {
                assert!(r.expect_err("3 bad digests").contains("(3 attempts)"));
                assert_eq!(calls, 3);
            },
        );
        run(
            &v,
            vec![Err(SendError::Other("denied".into()))],
            |r, calls| {
                assert_eq!(r.expect_err("other"), "denied");
                assert_eq!(calls, 1, "other errors are not sent again here");
            },
        );
    }

    #[test]
    fn completed_multipart_etags() {
        let v = Verifier::default();
        let want = multipart_etag(&[Md5Sum::of(b"a"), Md5Sum::of(b"b")]);
        assert!(v.check_multipart("big.bin", &want, &stored(&want)).is_ok());
        let wrong = format!("{}-2", "0".repeat(32));
        let e = v
            .check_multipart("big.bin", &want, &stored(&wrong))
            .expect_err("S3's form, other bytes");
        assert!(e.contains("as other bytes than were sent"), "{e}");
        // A store's own scheme (not `<md5>-N`) cannot be checked: the parts were.
        assert!(
            v.check_multipart("big.bin", &want, &stored("abc123"))
                .is_ok()
        );
        assert!(is_s3_multipart_etag("5d41402abc4b2a76b9719d911017c592-12"));
        assert!(!is_s3_multipart_etag("5d41402abc4b2a76b9719d911017c592"));
        assert!(!is_s3_multipart_etag("x-1"));
    }

    #[test]
    fn a_store_with_random_etags_is_trusted_after_two_different_ones() {
        let v = Verifier::default();
        run(
            &v,
            vec![
                Ok(stored("11111111111111111111111111111111")),
                Ok(stored("22222222222222222222222222222222")),
            ],
            |r, calls| {
                assert!(r.is_ok());
                assert_eq!(calls, 2);
            },
        );
        run(
            &v,
            vec![Ok(stored("33333333333333333333333333333333"))],
            |r, calls| {
                assert!(r.is_ok(), "not compared any more");
                assert_eq!(calls, 1);
            },
        );
    }

    /// Two ETags that differ because the file changed fail that file's upload; verification
    /// stays on for the rest of the run.
    #[test]
    fn a_file_that_changed_fails_its_upload_and_keeps_verification_on() {
        let v = Verifier::default();
        let (a, b) = (
            "11111111111111111111111111111111",
            "22222222222222222222222222222222",
        );
        run_changing(&v, vec![Ok(stored(a)), Ok(stored(b))], true, |r, _| {
            let e = r.expect_err("the file changed");
            assert!(e.contains("changed while it was uploaded"), "{e}");
        });
        run(&v, vec![Ok(stored(a)), Ok(stored(a))], |r, calls| {
            assert!(r.is_err(), "still compared");
            assert_eq!(calls, 2);
        });
    }
}
