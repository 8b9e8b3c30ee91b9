//! Local files are opened once, by identity. The scan records which file each path was (device
//! and inode); every later read (hashing, compressing, the upload's body) opens it without
//! blocking and only if it is still that regular file. A path swapped for a link to another
//! file, a FIFO or another file since the scan is refused and named, never read.
//!
//! An upload then reads the file it opened, not the path: on Linux through
//! `/proc/self/fd/N`, which reopens the same inode on every retry of a request, so the bytes
//! sent are the bytes of the file that was checked, whatever happens to the path meanwhile.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Which file a path was when the scan saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity in `meta` (metadata of the file itself, links followed).
    #[cfg(unix)]
    pub(crate) fn of(meta: &std::fs::Metadata) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        Some(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
    #[cfg(not(unix))]
    pub(crate) fn of(_meta: &std::fs::Metadata) -> Option<FileId> {
        None
    }
}

/// Open `path` for reading: without blocking on a FIFO, and only when it is a regular file
/// and (`expect`) the file the scan saw.
pub(crate) fn open_regular(path: &Path, expect: Option<FileId>) -> io::Result<File> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(
            "it is no longer a regular file (a FIFO, a device or a folder took its place since the scan); it was not read",
        ));
    }
    if let Some(want) = expect
        && FileId::of(&meta) != Some(want)
    {
        return Err(io::Error::other(
            "it was replaced by another file (or a link to one) since the scan; it was not read",
        ));
    }
    Ok(file)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// A file opened for an upload, and what it was when opened.
#[derive(Debug)]
pub(crate) struct Opened {
    watch: std::sync::Arc<Watch>,
    /// The path every read of the upload uses: the open file itself where the system has one
    /// (`/proc/self/fd/N`), else the scanned path.
    pub(crate) path: PathBuf,
}

/// The open file and its (size, mtime) when opened: shared by the parts of an upload.
#[derive(Debug)]
pub(crate) struct Watch {
    file: File,
    state: (u64, SystemTime),
}

impl Watch {
    /// Whether the open file still has the size and mtime it had when opened.
    pub(crate) fn unchanged(&self) -> bool {
        self.file
            .metadata()
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)))
            == Some(self.state)
    }
}

impl Opened {
    /// Open the scanned file `path` (which must still be `expect`) for an upload.
    pub(crate) fn open(path: &Path, expect: Option<FileId>) -> io::Result<Opened> {
        let file = open_regular(path, expect)?;
        let meta = file.metadata()?;
        let state = (meta.len(), meta.modified()?);
        let read_path = fd_path(&file, FileId::of(&meta)).unwrap_or_else(|| path.to_path_buf());
        Ok(Opened {
            watch: std::sync::Arc::new(Watch { file, state }),
            path: read_path,
        })
    }

    /// (size, mtime) when opened.
    pub(crate) fn state(&self) -> (u64, SystemTime) {
        self.watch.state
    }

    /// Whether the open file still has the size and mtime it had when opened.
    pub(crate) fn unchanged(&self) -> bool {
        self.watch.unchanged()
    }

    /// The check, for tasks of their own (the parts of a multipart upload).
    pub(crate) fn watch(&self) -> std::sync::Arc<Watch> {
        self.watch.clone()
    }
}

/// `/proc/self/fd/N` for an open file, when it names that same file.
#[cfg(target_os = "linux")]
fn fd_path(file: &File, id: Option<FileId>) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let meta = std::fs::metadata(&path).ok()?;
    (id.is_some() && FileId::of(&meta) == id).then_some(path)
}

#[cfg(not(target_os = "linux"))]
fn fd_path(_file: &File, _id: Option<FileId>) -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_swapped_for_a_link_or_a_fifo_is_refused_and_never_blocks() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = dir.path().join("a.txt");
        let outside = dir.path().join("outside.txt");
        std::fs::write(&a, b"site").expect("write");
        std::fs::write(&outside, b"secret").expect("write");
        let id = FileId::of(&std::fs::metadata(&a).expect("meta"));
        assert!(open_regular(&a, id).is_ok());

        // Swapped for a link to another file: refused.
        std::fs::remove_file(&a).expect("rm");
        std::os::unix::fs::symlink(&outside, &a).expect("link");
        let e = open_regular(&a, id).expect_err("another file");
        assert!(e.to_string().contains("replaced by another file"), "{e}");

        // Swapped for a FIFO: refused at once (a blocking open would wait for a writer).
        std::fs::remove_file(&a).expect("rm");
        let c = std::ffi::CString::new(a.to_str().expect("utf-8")).expect("cstr");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&a, id).expect_err("fifo");
        assert!(e.to_string().contains("no longer a regular file"), "{e}");
    }

    #[test]
    fn an_opened_file_is_read_through_its_descriptor_and_notices_changes() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = dir.path().join("a.txt");
        std::fs::write(&a, b"one").expect("write");
        let id = FileId::of(&std::fs::metadata(&a).expect("meta"));
        let opened = Opened::open(&a, id).expect("open");
        assert!(
            opened.path.starts_with("/proc/self/fd"),
            "{:?}",
            opened.path
        );
        assert!(opened.unchanged());
        // The path now names another file: reads through the descriptor still get the first.
        std::fs::rename(&a, dir.path().join("moved")).expect("mv");
        std::fs::write(&a, b"other").expect("write");
        assert_eq!(std::fs::read(&opened.path).expect("read"), b"one");
        // The open file itself grows: noticed.
        std::fs::write(dir.path().join("moved"), b"one more").expect("write");
        assert!(!opened.unchanged());
    }
}
