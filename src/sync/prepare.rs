//! Hashing and precompression, on all cores, off the async threads: the small files while
//! the listing runs, the large ones afterwards and only when a same-size object exists.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use md5::Digest;

use super::SyncError;
use super::compare;
use super::etag::{self, LocalDigest};
use super::execute::MULTIPART_THRESHOLD;
use super::local::LocalFile;
use crate::compress::{self, Compression};
use crate::config::CompareMode;
use crate::s3::RemoteObject;

/// Hash what [`prepare`] left unhashed and the listing shows is needed: large files whose
/// same-size object has a multipart ETag get the part sizes it asks for.
pub(super) async fn finish(
    files: Vec<LocalFile>,
    mut digests: Vec<Option<LocalDigest>>,
    mode: CompareMode,
    remote: &[RemoteObject],
) -> Result<(Arc<Vec<LocalFile>>, Vec<Option<LocalDigest>>), SyncError> {
    let files = std::sync::Arc::new(files);
    // Large files are hashed only when a same-size object exists, with the part sizes its
    // multipart ETag asks for.
    let late_jobs = needed_late_digests(mode, &files, remote, &digests);
    if !late_jobs.is_empty() {
        let files2 = files.clone();
        let late = tokio::task::spawn_blocking(move || {
            hash_files(&files2, late_jobs, &AtomicBool::new(false))
        })
        .await
        .map_err(|e| SyncError::Internal(format!("while hashing: {e}")))?;
        for (i, d) in late {
            digests[i] = Some(d);
        }
    }
    Ok((files, digests))
}

/// Hash files on all cores, off the async threads. `jobs`: (index, part sizes). Once `stop`
/// is set, the remaining jobs are skipped (they get no digest).
pub(super) fn hash_files(
    files: &[LocalFile],
    jobs: Vec<(usize, Vec<u64>)>,
    stop: &AtomicBool,
) -> Vec<(usize, LocalDigest)> {
    // An unreadable file gets no digest: it then counts as changed, and its upload reports
    // the read error.
    parallel(jobs, |(i, parts)| {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        etag::digest_file(&files[*i].path, files[*i].id, parts)
            .ok()
            .map(|(d, _)| (*i, d))
    })
}

/// Run `f` over `jobs` on one thread per core (CPU-bound work: hashing, compressing), off the
/// async threads. Results come back in no particular order.
fn parallel<T: Sync, R: Send>(jobs: Vec<T>, f: impl Fn(&T) -> Option<R> + Sync) -> Vec<R> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(jobs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(job) = jobs.get(k) else { break };
                    mine.extend(f(job));
                }
                results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(mine);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Compress what the rules ask to compress, then hash the small files (checksum mode) until
/// `stop` is set.
/// Returns the files (size and encoding updated for compressed ones) and their digests.
pub(super) fn prepare(
    mut files: Vec<LocalFile>,
    compressions: &[Option<Compression>],
    checksum: bool,
    stop: &AtomicBool,
) -> (Vec<LocalFile>, Vec<Option<LocalDigest>>) {
    let mut digests: Vec<Option<LocalDigest>> = vec![None; files.len()];
    let jobs: Vec<(usize, Compression)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| compressions.get(f.group).copied().flatten().map(|c| (i, c)))
        .collect();
    let compressed = parallel(jobs, |&(i, c)| {
        // Unreadable files stay as they are: their upload reports the error.
        let file = super::open::open_regular(&files[i].path, files[i].id).ok()?;
        let bytes = compress::compress_file(file, c).ok().flatten()?;
        Some((
            i,
            c,
            bytes.len() as u64,
            hex::encode(md5::Md5::digest(&bytes)),
        ))
    });
    for (i, c, len, md5) in compressed {
        files[i].encoding = Some(c);
        files[i].size = len;
        digests[i] = Some(LocalDigest {
            md5,
            multipart: Vec::new(),
        });
    }
    if checksum {
        let jobs = files
            .iter()
            .enumerate()
            .filter(|(i, f)| digests[*i].is_none() && f.size < MULTIPART_THRESHOLD)
            .map(|(i, _)| (i, Vec::new()))
            .collect();
        for (i, d) in hash_files(&files, jobs, stop) {
            digests[i] = Some(d);
        }
    }
    (files, digests)
}

fn needed_late_digests(
    mode: CompareMode,
    files: &[LocalFile],
    remote: &[RemoteObject],
    digests: &[Option<LocalDigest>],
) -> Vec<(usize, Vec<u64>)> {
    let mut jobs = Vec::new();
    let mut j = 0;
    for (i, f) in files.iter().enumerate() {
        while j < remote.len() && remote[j].rel.as_str() < f.rel.as_str() {
            j += 1;
        }
        if f.encoding.is_some() {
            continue; // digest of the compressed bytes already computed
        }
        let Some(r) = remote.get(j).filter(|r| r.rel == f.rel) else {
            continue;
        };
        let Some(parts) = compare::digest_needed(mode, f, r) else {
            continue;
        };
        if digests[i].is_none() || !parts.is_empty() {
            jobs.push((i, parts));
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_stops_when_asked_and_the_late_pass_covers_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        let files: Vec<LocalFile> = (0..4)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, format!("body {i}")).expect("write");
                LocalFile {
                    rel: format!("f{i}"),
                    path,
                    size: 6,
                    mtime: std::time::SystemTime::UNIX_EPOCH,
                    group: 0,
                    encoding: None,
                    source_size: 6,
                    id: None,
                }
            })
            .collect();
        let all = || (0..files.len()).map(|i| (i, Vec::new())).collect();
        assert!(hash_files(&files, all(), &AtomicBool::new(true)).is_empty());

        // The prehash was stopped before any file: the late pass hashes exactly the files that
        // have a same-size object (f1, f3), and no others (f0 missing, f2 of another size).
        let (_, digests) = prepare(files.clone(), &[None], true, &AtomicBool::new(true));
        assert!(digests.iter().all(Option::is_none));
        let remote: Vec<RemoteObject> = [("f1", 6), ("f2", 7), ("f3", 6)]
            .into_iter()
            .map(|(rel, size)| RemoteObject {
                rel: rel.into(),
                size,
                etag: "00000000000000000000000000000000".into(),
                last_modified: 0,
                version_id: None,
            })
            .collect();
        let late = needed_late_digests(CompareMode::Checksum, &files, &remote, &digests);
        let mut got: Vec<usize> = hash_files(&files, late, &AtomicBool::new(false))
            .into_iter()
            .map(|(i, d)| {
                assert_eq!(d.md5, hex::encode(md5::Md5::digest(format!("body {i}"))));
                i
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![1, 3]);
    }
}
