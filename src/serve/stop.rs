//! How a server is told to stop. The command line's serving process reads
//! its own signals (signal-hook, in the event loop); a server embedded in
//! someone else's Python process must not touch signals at all, so it is
//! stopped through a [`Stopper`] instead: any thread may call it, and it
//! wakes the loop through the poll's own waker.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::{Token, Waker};

/// Which signals the loop reads itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signals {
    /// The process is ours (the command line): TERM, INT, QUIT, USR1, HUP,
    /// TTIN, TTOU are registered, and the signals blocked during start-up
    /// are unblocked once the loop handles them.
    Process,
    /// A guest in a Python process: no handler, no mask change. It stops
    /// through its [`Stopper`] (a Python signal handler may call that).
    None,
}

const RUNNING: u8 = 0;
const GRACEFUL: u8 = 1;
const NOW: u8 = 2;
/// `deadline_ms` when the stop gave no time of its own.
const NO_DEADLINE: u64 = u64::MAX;

/// What a stop request asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopRequest {
    /// Keep serving.
    None,
    /// Stop accepting, let busy connections finish within this time (or
    /// the server's graceful timeout when None).
    Graceful(Option<Duration>),
    /// Close everything and return.
    Now,
}

/// A handle that stops one server from any thread. Cloning shares it.
#[derive(Clone)]
pub struct Stopper {
    inner: Arc<Inner>,
}

struct Inner {
    waker: Waker,
    state: AtomicU8,
    deadline_ms: AtomicU64,
}

impl Stopper {
    pub(crate) fn new(registry: &mio::Registry, token: Token) -> std::io::Result<Stopper> {
        Ok(Stopper {
            inner: Arc::new(Inner {
                waker: Waker::new(registry, token)?,
                state: AtomicU8::new(RUNNING),
                deadline_ms: AtomicU64::new(NO_DEADLINE),
            }),
        })
    }

    /// Asks the loop to drain: stop accepting, finish in-flight responses
    /// within `within` (None: the server's graceful timeout), then return.
    /// `Some(Duration::ZERO)` is [`Stopper::stop_now`].
    pub fn stop(&self, within: Option<Duration>) {
        if within == Some(Duration::ZERO) {
            return self.stop_now();
        }
        if let Some(t) = within {
            let ms = u64::try_from(t.as_millis()).unwrap_or(NO_DEADLINE - 1);
            self.inner.deadline_ms.fetch_min(ms, Ordering::AcqRel);
        }
        let _ = self.inner.state.compare_exchange(
            RUNNING,
            GRACEFUL,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.wake();
    }

    /// Asks the loop to close every connection and return at once.
    pub(crate) fn stop_now(&self) {
        self.inner.state.store(NOW, Ordering::Release);
        self.wake();
    }

    /// What has been asked so far (read by the loop on every wake-up).
    pub(crate) fn requested(&self) -> StopRequest {
        match self.inner.state.load(Ordering::Acquire) {
            RUNNING => StopRequest::None,
            GRACEFUL => {
                StopRequest::Graceful(match self.inner.deadline_ms.load(Ordering::Acquire) {
                    NO_DEADLINE => None,
                    ms => Some(Duration::from_millis(ms)),
                })
            }
            _ => StopRequest::Now,
        }
    }

    fn wake(&self) {
        if let Err(e) = self.inner.waker.wake() {
            // The loop still sees the request at its next tick.
            log::debug!("cannot wake the event loop: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_escalate_and_deadlines_only_shrink() {
        let poll = mio::Poll::new().unwrap();
        let s = Stopper::new(poll.registry(), Token(7)).unwrap();
        assert_eq!(s.requested(), StopRequest::None);
        s.stop(None);
        assert_eq!(s.requested(), StopRequest::Graceful(None));
        s.stop(Some(Duration::from_secs(10)));
        s.stop(Some(Duration::from_secs(20)));
        assert_eq!(
            s.requested(),
            StopRequest::Graceful(Some(Duration::from_secs(10)))
        );
        s.clone().stop(Some(Duration::ZERO));
        assert_eq!(s.requested(), StopRequest::Now);
        s.stop(None);
        assert_eq!(s.requested(), StopRequest::Now, "a stop never softens");
    }
}
