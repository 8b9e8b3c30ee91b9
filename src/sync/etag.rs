//! S3 ETags computed locally: the MD5 of a single-part upload, and the multipart form
//! `hex(md5(md5(part1) ‖ md5(part2) ‖ …))-N`.
//!
//! A multipart ETag depends on the part size the uploader used, which the listing does not
//! say. We know N and the size, so we try every part size that yields exactly N parts among:
//! our own (which equals aws-cli's, see [`part_size_for`]), aws-cli's plain 8 MiB, the sizes
//! other common tools use, and the smallest whole MiB that gives N parts. All candidates are
//! computed in one streaming pass over the file.

use std::io::Read;
use std::path::Path;

use md5::{Digest, Md5};

const MIB: u64 = 1024 * 1024;
/// aws-cli's default `multipart_threshold` and `multipart_chunksize`, and ours.
pub(crate) const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// S3's limit on the number of parts of one upload.
pub(crate) const MAX_PARTS: u64 = 10_000;
/// Read buffer for hashing: large enough for sequential throughput, small enough to keep
/// memory flat with one buffer per hashing thread.
const READ_BUF: usize = 1024 * 1024;

thread_local! {
    /// The hashing thread's read buffer, allocated once and reused for every file. Allocating
    /// (and zeroing) 1 MiB per file cost more CPU than the MD5 of a 1–20 KiB file: perf on the
    /// 5,000-file upload (BENCHMARKS.md, P1) put `memset` at 7.4% of the run's samples against
    /// 6.5% for MD5 itself.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// Part sizes used by other common uploaders (boto3/rclone 5 MiB, s3cmd 15 MiB,
/// s5cmd 50 MiB, and round numbers seen in the wild).
const OTHER_PART_SIZES: &[u64] = &[
    5 * MIB,
    15 * MIB,
    16 * MIB,
    50 * MIB,
    64 * MIB,
    100 * MIB,
    128 * MIB,
];

/// The part size for a file: 8 MiB, doubled until the file needs at most 10,000 parts.
/// This is s3transfer's (aws-cli's) ChunksizeAdjuster rule, so our ETags equal aws-cli's.
pub(crate) fn part_size_for(size: u64) -> u64 {
    let mut part = DEFAULT_PART_SIZE;
    while size.div_ceil(part) > MAX_PARTS {
        part *= 2;
    }
    part
}

/// What a listed ETag can be compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EtagKind {
    /// 32 hex digits: the MD5 of the content for plain and SSE-S3 single-part objects.
    Md5,
    /// `<32 hex>-N`.
    Multipart { parts: u64 },
    /// Anything else: cannot be derived from the content (e.g. SSE-C, some S3-compatible stores).
    NotMd5,
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Classify an ETag (quotes already removed).
pub(crate) fn classify(etag: &str) -> EtagKind {
    if is_hex32(etag) {
        return EtagKind::Md5;
    }
    if let Some((hex, n)) = etag.split_once('-')
        && is_hex32(hex)
        && let Ok(parts) = n.parse::<u64>()
        && parts >= 1
    {
        return EtagKind::Multipart { parts };
    }
    EtagKind::NotMd5
}

/// Part sizes that give exactly `parts` parts for `size` bytes, most likely first, no repeats.
pub(crate) fn candidate_part_sizes(size: u64, parts: u64) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    let mut consider = |ps: u64| {
        if ps > 0 && size.div_ceil(ps) == parts && !out.contains(&ps) {
            out.push(ps);
        }
    };
    consider(part_size_for(size));
    consider(DEFAULT_PART_SIZE);
    for &ps in OTHER_PART_SIZES {
        consider(ps);
    }
    if parts > 0 {
        let min = size.div_ceil(parts);
        consider(min.div_ceil(MIB) * MIB);
    }
    out
}

/// Running state of one candidate multipart ETag.
struct PartHasher {
    part_size: u64,
    in_part: u64,
    current: Md5,
    digests: Md5,
    count: u64,
}

impl PartHasher {
    fn new(part_size: u64) -> Self {
        PartHasher {
            part_size,
            in_part: 0,
            current: Md5::new(),
            digests: Md5::new(),
            count: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = usize::try_from(self.part_size - self.in_part).unwrap_or(usize::MAX);
            let take = room.min(data.len());
            self.current.update(&data[..take]);
            self.in_part += take as u64;
            data = &data[take..];
            if self.in_part == self.part_size {
                self.close_part();
            }
        }
    }

    fn close_part(&mut self) {
        let done = std::mem::replace(&mut self.current, Md5::new());
        self.digests.update(done.finalize());
        self.count += 1;
        self.in_part = 0;
    }

    fn finish(mut self) -> String {
        if self.in_part > 0 {
            self.close_part();
        }
        format!("{}-{}", hex::encode(self.digests.finalize()), self.count)
    }
}

/// The local digests needed to compare with one remote ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalDigest {
    /// Hex MD5 of the whole file.
    pub(crate) md5: String,
    /// Multipart ETags (`hex-N`) for the candidate part sizes, if a multipart ETag was asked for.
    pub(crate) multipart: Vec<String>,
}

impl LocalDigest {
    /// Does the file's content match the listed ETag?
    pub(crate) fn matches(&self, etag: &str) -> bool {
        let etag = etag.to_ascii_lowercase();
        self.md5 == etag || self.multipart.contains(&etag)
    }
}

/// Hash a file in one streaming pass: its MD5, plus the multipart ETags for `part_sizes`.
/// Returns the digests and the number of bytes read.
pub(crate) fn digest_file(
    path: &Path,
    id: Option<super::open::FileId>,
    part_sizes: &[u64],
) -> std::io::Result<(LocalDigest, u64)> {
    let mut file = super::open::open_regular(path, id)?;
    let mut whole = Md5::new();
    let mut parts: Vec<PartHasher> = part_sizes.iter().map(|&ps| PartHasher::new(ps)).collect();
    let mut total = 0u64;
    READ_BUFFER.with_borrow_mut(|buf| {
        buf.resize(READ_BUF, 0);
        loop {
            let n = file.read(buf)?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            total += n as u64;
            whole.update(&buf[..n]);
            for p in &mut parts {
                p.update(&buf[..n]);
            }
        }
    })?;
    Ok((
        LocalDigest {
            md5: hex::encode(whole.finalize()),
            multipart: parts.into_iter().map(PartHasher::finish).collect(),
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_etags() {
        assert_eq!(classify("d41d8cd98f00b204e9800998ecf8427e"), EtagKind::Md5);
        assert_eq!(
            classify("d41d8cd98f00b204e9800998ecf8427e-3"),
            EtagKind::Multipart { parts: 3 }
        );
        assert_eq!(classify("abc"), EtagKind::NotMd5);
        assert_eq!(
            classify("d41d8cd98f00b204e9800998ecf8427e-x"),
            EtagKind::NotMd5
        );
    }

    #[test]
    fn part_size_grows_to_stay_within_10000_parts() {
        assert_eq!(part_size_for(0), DEFAULT_PART_SIZE);
        assert_eq!(part_size_for(80_000 * MIB), DEFAULT_PART_SIZE);
        assert_eq!(part_size_for(80_000 * MIB + 1), 16 * MIB);
        assert_eq!(part_size_for(5 * 1024 * 1024 * MIB), 1024 * MIB);
    }

    #[test]
    fn candidates_give_n_parts() {
        let size = 20 * MIB;
        let c = candidate_part_sizes(size, 3);
        assert_eq!(c[0], 8 * MIB);
        assert!(c.iter().all(|ps| size.div_ceil(*ps) == 3));
        assert!(candidate_part_sizes(size, 4).contains(&(5 * MIB)));
    }

    #[test]
    fn multipart_etag_matches_the_definition() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(2 * 1024 * 1024 + 5))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).expect("write");
        let ps = 1024 * 1024;
        let (d, n) = digest_file(&path, None, &[ps as u64]).expect("digest");
        assert_eq!(n, data.len() as u64);
        assert_eq!(d.md5, hex::encode(Md5::digest(&data)));
        let mut cat = Vec::new();
        for chunk in data.chunks(ps) {
            cat.extend_from_slice(&Md5::digest(chunk));
        }
        let want = format!("{}-3", hex::encode(Md5::digest(&cat)));
        assert_eq!(d.multipart, vec![want.clone()]);
        assert!(d.matches(&want.to_uppercase()));
        assert!(!d.matches("00000000000000000000000000000000"));
    }
}
