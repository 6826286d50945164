//! What a worker process adds to the app it serves, as an [`App`] wrapper
//! so the event loop needs no change: a heartbeat the master watches for
//! `--timeout`, and a request budget (`--max-requests`) after which the
//! worker drains and exits so the master replaces it.
//!
//! The heartbeat is a file shared with the master whose modification time
//! moves while the loop turns (gunicorn's WorkerTmp): a worker stuck in the
//! app stops moving it. Its first beat also tells the master the worker is
//! up (app imported, loop running).

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime};

use crate::serve::app::{App, AppFailure, Request};

/// The loop wakes at least every 500 ms; one beat a second is plenty for a
/// timeout counted in seconds and costs one syscall per second.
const BEAT_EVERY: Duration = Duration::from_secs(1);

/// A worker's side of the heartbeat file.
pub struct Heartbeat {
    file: File,
    last: Option<Instant>,
}

impl Heartbeat {
    pub fn new(file: File) -> Self {
        Heartbeat { file, last: None }
    }

    pub fn beat(&mut self, now: Instant) {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < BEAT_EVERY)
        {
            return;
        }
        self.last = Some(now);
        if let Err(e) = self.file.set_modified(SystemTime::now()) {
            log::warn!("heartbeat: {e}");
        }
    }
}

/// `--max-requests` plus up to `jitter` more, drawn at random per worker so
/// that workers started together do not all restart together.
pub fn request_budget(max_requests: u64, jitter: u64) -> Option<u64> {
    if max_requests == 0 {
        return None;
    }
    // std's RandomState is seeded per process from the OS: enough
    // randomness for spreading restarts, without a dependency.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let extra = match jitter {
        0 => 0,
        j => random % (j + 1),
    };
    Some(max_requests.saturating_add(extra))
}

/// An app served by a supervised worker.
pub struct Supervised<A> {
    inner: A,
    heartbeat: Option<Heartbeat>,
    /// Requests left before the worker restarts.
    remaining: Option<u64>,
    stopping: bool,
}

impl<A: App> Supervised<A> {
    pub fn new(inner: A, heartbeat: Option<Heartbeat>, budget: Option<u64>) -> Self {
        let mut s = Supervised {
            inner,
            heartbeat,
            remaining: budget,
            stopping: false,
        };
        // Up before the first request: the master counts the worker as
        // booted from here.
        if let Some(h) = &mut s.heartbeat {
            h.beat(Instant::now());
        }
        s
    }
}

impl<A: App> App for Supervised<A> {
    type Response = A::Response;

    fn call(&mut self, request: Request<'_>) -> Result<Self::Response, AppFailure> {
        if let Some(n) = &mut self.remaining {
            *n = n.saturating_sub(1);
        }
        self.inner.call(request)
    }

    fn take_body_buffer(&mut self) -> Vec<u8> {
        self.inner.take_body_buffer()
    }

    fn idle<R: Send>(&mut self, wait: impl FnOnce() -> R + Send) -> R {
        self.inner.idle(wait)
    }

    fn wants_connections(&self) -> bool {
        self.remaining != Some(0) && self.inner.wants_connections()
    }

    fn after_wake(&mut self) -> bool {
        if let Some(h) = &mut self.heartbeat {
            h.beat(Instant::now());
        }
        let mut stop = self.inner.after_wake();
        if self.remaining == Some(0) && !self.stopping {
            self.stopping = true;
            log::info!("served --max-requests requests: restarting this worker");
            stop = true;
        }
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_has_jitter_within_bounds() {
        assert_eq!(request_budget(0, 10), None);
        assert_eq!(request_budget(5, 0), Some(5));
        for _ in 0..100 {
            let b = request_budget(100, 7).unwrap();
            assert!((100..=107).contains(&b), "{b}");
        }
        assert_eq!(request_budget(u64::MAX, 0), Some(u64::MAX));
    }

    #[test]
    fn heartbeat_moves_mtime_at_most_once_a_second() {
        let file = tempfile::tempfile().unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH).unwrap();
        let probe = file.try_clone().unwrap();
        let mut h = Heartbeat::new(file);
        let t0 = Instant::now();
        h.beat(t0);
        let first = probe.metadata().unwrap().modified().unwrap();
        assert!(first > SystemTime::UNIX_EPOCH);
        probe.set_modified(SystemTime::UNIX_EPOCH).unwrap();
        h.beat(t0 + Duration::from_millis(500));
        let m = probe.metadata().unwrap().modified().unwrap();
        assert_eq!(m, SystemTime::UNIX_EPOCH, "beat again within a second");
        h.beat(t0 + Duration::from_millis(1500));
        assert!(probe.metadata().unwrap().modified().unwrap() > SystemTime::UNIX_EPOCH);
    }
}
