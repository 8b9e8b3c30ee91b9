//! Cancellation on SIGTERM / SIGINT, which is how Bitbucket stops a step.
//!
//! The first signal sets the flag: no new work starts, in-flight requests are dropped, open
//! multipart uploads are aborted, nothing is deleted, and the pipe prints what it did.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A cheap, clonable cancellation flag.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<(AtomicBool, Notify)>,
}

impl Cancel {
    /// Set the flag and wake every waiter.
    pub fn cancel(&self) {
        self.inner.0.store(true, Ordering::SeqCst);
        self.inner.1.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.0.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.1.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Cancel on the first SIGTERM or SIGINT; returns the signal's name through `on_signal`.
    pub fn listen_for_signals(&self, on_signal: impl Fn(&'static str) + Send + 'static) {
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
            }
            #[cfg(not(unix))]
            {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_signal("Ctrl-C");
                    me.cancel();
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
}
