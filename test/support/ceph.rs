//! A real Ceph RGW store (Debian's 16.2), for the tests that must meet a store that is not AWS
//! (issue #26): one single-node cluster per test binary, started by `test/ceph/start` at the
//! first [`Ceph::get`], and a fresh bucket per test from [`Ceph::bucket`] (tests run in
//! parallel on the one cluster).
//!
//! The cluster goes when this process goes, however it ends: the start script's watchdog
//! (`--stop-on-eof`) runs `test/ceph/stop` when its standard input, a pipe whose only writer is
//! this process, reaches end of file, which the kernel brings about when the process exits or
//! is killed. A cluster that cannot start fails the test with the script's reason.

use std::io::Read;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::create_bucket;

/// How long the start script may take: an apt-get install on a fresh machine (the script gives
/// it 15 minutes) plus a start (about 3 s here, each step with its own deadline of at most 90 s).
/// The script ends itself on every deadline; this only guards against a bug in it.
const START_DEADLINE: Duration = Duration::from_secs(20 * 60);

/// The cluster of this test binary.
pub struct Ceph {
    url: String,
    /// The write end of the watchdog's pipe: held, never written, until the process exits.
    _watchdog: ChildStdin,
}

impl Ceph {
    /// The cluster, started at the first call; panics with the start script's reason when it
    /// cannot start (a missing store is a failure, never a skipped test).
    pub fn get() -> &'static Ceph {
        static CEPH: OnceLock<Result<Ceph, String>> = OnceLock::new();
        match CEPH.get_or_init(start) {
            Ok(ceph) => ceph,
            Err(why) => panic!("{why}"),
        }
    }

    /// RGW's S3 endpoint, `http://127.0.0.1:PORT`; the user's keys are the fixture keys
    /// ([`super::ACCESS_KEY`], [`super::SECRET_KEY`]), as `key_vars` sets them.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A new, empty bucket whose name starts with `hint` (lowercase letters, digits, hyphens)
    /// and is unique to this call: tests share the cluster.
    pub fn bucket(&self, hint: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let hint: String = hint.chars().take(40).collect();
        let name = format!("{hint}-{}-{n}", std::process::id());
        create_bucket(&self.url, &name);
        name
    }
}

fn start() -> Result<Ceph, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test/ceph/start");
    let mut child = Command::new(&script)
        .arg("--stop-on-eof")
        .env("CEPH_ACCESS_KEY", super::ACCESS_KEY)
        .env("CEPH_SECRET_KEY", super::SECRET_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let watchdog = child.stdin.take().ok_or("no pipe to the start script")?;
    // Read both streams on threads, so that neither can fill up and block the script.
    let mut stdout = child.stdout.take().ok_or("no stdout of the start script")?;
    let mut stderr = child.stderr.take().ok_or("no stderr of the start script")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < START_DEADLINE => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {} s: killed",
                    script.display(),
                    START_DEADLINE.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for {}: {e}", script.display())),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CEPH_ENDPOINT="))
        .map(str::to_string);
    match url {
        Some(url) if status.success() => Ok(Ceph {
            url,
            _watchdog: watchdog,
        }),
        _ => Err(format!(
            "Ceph RGW could not be started by {} ({status}):\n{stderr}{stdout}",
            script.display()
        )),
    }
}
