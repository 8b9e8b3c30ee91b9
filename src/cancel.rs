//! Cancellation on SIGTERM / SIGINT, which is how Bitbucket stops a step.
//!
//! The first signal sets the flag: no new work starts, in-flight requests are dropped, open
//! multipart uploads are aborted (best effort, within [`ABORT_DEADLINE`]), nothing is deleted,
//! and the pipe prints what it did. Whatever still runs [`SHUTDOWN_GRACE`] after the signal is
//! dropped ([`Cancel::bounded`]), so the pipe exits within seconds whatever the network does.
//! A second signal exits at once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// How long aborting one open multipart upload may take once a signal arrived. Aborts run in
/// parallel; S3 answers one in well under a second.
pub(crate) const ABORT_DEADLINE: Duration = Duration::from_secs(2);
/// How long after a signal the pipe may still wind down (aborts, summary) before whatever is
/// left is dropped. Bitbucket kills a stopped step some seconds after SIGTERM, and the issue's
/// contract is an exit within 5 s: 3 s, plus the summary, the report and the runtime's 200 ms.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A multipart upload that was created and is neither completed nor aborted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenUpload {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) upload_id: String,
}

/// A cheap, clonable cancellation flag, with the multipart uploads left to clean up if the
/// run stops.
#[derive(Clone, Default)]
pub(crate) struct Cancel {
    inner: Arc<(AtomicBool, Notify)>,
    open: Arc<Mutex<Vec<OpenUpload>>>,
}

impl Cancel {
    /// Set the flag and wake every waiter.
    pub(crate) fn cancel(&self) {
        self.inner.0.store(true, Ordering::SeqCst);
        self.inner.1.notify_waiters();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.inner.0.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled.
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.inner.1.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Run `f`; once cancelled, give it [`SHUTDOWN_GRACE`] to finish, then drop it (`None`).
    pub(crate) async fn bounded<F: Future>(&self, f: F) -> Option<F::Output> {
        tokio::select! {
            r = f => Some(r),
            () = async {
                self.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => None,
        }
    }

    fn open_uploads(&self) -> std::sync::MutexGuard<'_, Vec<OpenUpload>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A multipart upload was created: it must be completed or aborted.
    pub(crate) fn track_upload(&self, upload: OpenUpload) {
        self.open_uploads().push(upload);
    }

    /// A multipart upload was completed or aborted.
    pub(crate) fn untrack_upload(&self, upload_id: &str) {
        self.open_uploads().retain(|u| u.upload_id != upload_id);
    }

    /// The multipart uploads still open.
    pub(crate) fn still_open(&self) -> Vec<OpenUpload> {
        self.open_uploads().clone()
    }

    /// Cancel on the first SIGTERM or SIGINT; returns the signal's name through `on_signal`.
    /// A second signal calls `on_second` and exits the process with `exit_code` at once.
    pub(crate) fn listen_for_signals(
        &self,
        exit_code: u8,
        on_signal: impl Fn(&'static str) + Send + 'static,
        on_second: impl Fn(&'static str) + Send + 'static,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                on_signal(name);
                me.cancel();
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                on_second(name);
                std::process::exit(i32::from(exit_code));
            }
            #[cfg(not(unix))]
            {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_signal("Ctrl-C");
                    me.cancel();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        on_second("Ctrl-C");
                        std::process::exit(i32::from(exit_code));
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_cancel() {
        let c = Cancel::default();
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.cancelled().await });
        tokio::task::yield_now().await;
        assert!(!c.is_cancelled());
        c.cancel();
        waiter.await.expect("joined");
        assert!(c.is_cancelled());
        c.cancelled().await; // already cancelled: returns at once
    }

    #[tokio::test]
    async fn work_is_dropped_a_grace_period_after_cancel() {
        let c = Cancel::default();
        assert_eq!(c.bounded(async { 7 }).await, Some(7));
        let c2 = c.clone();
        tokio::spawn(async move { c2.cancel() });
        assert_eq!(c.bounded(std::future::pending::<()>()).await, None);
    }

    #[test]
    fn open_uploads_are_tracked_until_done() {
        let c = Cancel::default();
        let up = |id: &str| OpenUpload {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: id.into(),
        };
        c.track_upload(up("1"));
        c.track_upload(up("2"));
        c.untrack_upload("1");
        assert_eq!(c.still_open(), vec![up("2")]);
    }
}
