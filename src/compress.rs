//! Precompression (gzip, brotli) with deterministic output.
//!
//! The same input always gives the same bytes (gzip: no name, mtime 0, fixed level; brotli:
//! fixed quality and window), so the MD5 of the compressed bytes is stable across runs and the
//! checksum comparison still skips unchanged files.

use std::io::Write;

use flate2::Compression as GzLevel;
use flate2::GzBuilder;

/// Files smaller than this are not compressed: the saving would not pay for the decoding,
/// and CloudFront itself does not compress objects below 1,000 bytes.
pub(crate) const MIN_SIZE: u64 = 1024;
/// Files larger than this are uploaded uncompressed: compression runs in memory, and text
/// assets this large are rare. The uploads of compressed files in flight share a memory
/// budget (`execute::COMPRESS_MEMORY_MIB`), whatever `MAX_CONCURRENCY` is.
pub(crate) const MAX_SIZE: u64 = 16 * 1024 * 1024;
/// gzip level 9: the smallest output; deterministic for a given flate2 backend.
const GZIP_LEVEL: u32 = 9;
/// brotli quality 9 with a 4 MiB window: within a few percent of quality 11's size at a
/// fraction of its time (quality 11 runs below 1 MB/s), which matters because every deploy
/// compresses every matching file to compare it.
const BROTLI_QUALITY: u32 = 9;
const BROTLI_LG_WINDOW: u32 = 22;

/// A compression a rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Compression {
    Gzip,
    Br,
}

impl Compression {
    /// From the rule's `compress` value.
    pub(crate) fn parse(s: &str) -> Option<Compression> {
        match s {
            "gzip" => Some(Compression::Gzip),
            "br" => Some(Compression::Br),
            _ => None,
        }
    }

    /// The `Content-Encoding` value.
    pub(crate) fn encoding(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Br => "br",
        }
    }
}

/// Compress `data` deterministically.
pub(crate) fn compress(data: &[u8], c: Compression) -> std::io::Result<Vec<u8>> {
    match c {
        Compression::Gzip => {
            let mut enc = GzBuilder::new()
                .mtime(0)
                .write(Vec::with_capacity(data.len() / 3), GzLevel::new(GZIP_LEVEL));
            enc.write_all(data)?;
            enc.finish()
        }
        Compression::Br => {
            let mut out = Vec::with_capacity(data.len() / 3);
            {
                let mut w = brotli::CompressorWriter::new(
                    &mut out,
                    64 * 1024,
                    BROTLI_QUALITY,
                    BROTLI_LG_WINDOW,
                );
                w.write_all(data)?;
                w.flush()?;
            }
            Ok(out)
        }
    }
}

/// Compress a file when it is worth it: `None` when it is outside [MIN_SIZE, MAX_SIZE] or
/// compression does not make it smaller.
pub(crate) fn compress_file(
    mut file: std::fs::File,
    c: Compression,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let meta = file.metadata()?;
    if meta.len() < MIN_SIZE || meta.len() > MAX_SIZE {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&mut file).take(MAX_SIZE + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_SIZE {
        return Ok(None);
    }
    let out = compress(&data, c)?;
    Ok((out.len() < data.len()).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn text() -> Vec<u8> {
        (0..2000)
            .flat_map(|i| format!("line {i} of some css {{ color: red }}\n").into_bytes())
            .collect()
    }

    /// The MD5s of the compressed bytes of a fixed text. When a dependency update (flate2's
    /// backend, brotli) changes them, every precompressed file would count as changed and be
    /// uploaded again on the next deploy: this fails first, so the change is a decision.
    #[test]
    fn golden_hashes() {
        use md5::{Digest, Md5};
        let data = text();
        let gz = compress(&data, Compression::Gzip).expect("gzip");
        let br = compress(&data, Compression::Br).expect("br");
        assert_eq!(
            (hex::encode(Md5::digest(&gz)), gz.len()),
            (GOLDEN_GZIP.0.to_string(), GOLDEN_GZIP.1),
            "gzip output changed"
        );
        assert_eq!(
            (hex::encode(Md5::digest(&br)), br.len()),
            (GOLDEN_BROTLI.0.to_string(), GOLDEN_BROTLI.1),
            "brotli output changed"
        );
    }
    const GOLDEN_GZIP: (&str, usize) = ("3f62eeef483a1de4df12f5dd1217b8d8", 5060);
    const GOLDEN_BROTLI: (&str, usize) = ("d033f18c09d26296dd740acf9b684cf4", 1792);

    #[test]
    fn gzip_is_deterministic_and_roundtrips() {
        let data = text();
        let a = compress(&data, Compression::Gzip).expect("gzip");
        let b = compress(&data, Compression::Gzip).expect("gzip");
        assert_eq!(a, b);
        assert!(a.len() < data.len() / 5);
        assert_eq!(&a[4..8], &[0, 0, 0, 0], "mtime is zero");
        assert_eq!(a[3] & 0x08, 0, "no file name");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(a.as_slice())
            .read_to_end(&mut out)
            .expect("gunzip");
        assert_eq!(out, data);
    }

    #[test]
    fn brotli_is_deterministic_and_roundtrips() {
        let data = text();
        let a = compress(&data, Compression::Br).expect("br");
        assert_eq!(a, compress(&data, Compression::Br).expect("br"));
        let mut out = Vec::new();
        brotli::Decompressor::new(a.as_slice(), 4096)
            .read_to_end(&mut out)
            .expect("unbrotli");
        assert_eq!(out, data);
    }

    #[test]
    fn small_and_incompressible_files_are_left_alone() {
        let dir = tempfile::tempdir().expect("tmp");
        let small = dir.path().join("small.css");
        std::fs::write(&small, b"a{}").expect("write");
        assert_eq!(
            compress_file(
                std::fs::File::open(&small).expect("open"),
                Compression::Gzip
            )
            .expect("ok"),
            None
        );
        let random = dir.path().join("random.bin");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(&random, noise).expect("write");
        assert_eq!(
            compress_file(std::fs::File::open(&random).expect("open"), Compression::Br)
                .expect("ok"),
            None
        );
        let big = dir.path().join("big.css");
        std::fs::write(&big, text()).expect("write");
        assert!(
            compress_file(std::fs::File::open(&big).expect("open"), Compression::Gzip)
                .expect("ok")
                .is_some()
        );
    }
}
