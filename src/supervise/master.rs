//! The master process (gunicorn's arbiter): forks the workers, replaces
//! those that die, kills those whose heartbeat stops (`--timeout`), and
//! turns signals into stops, reloads and resizes. It never serves a request
//! and never runs Python itself: the [`Spawner`] it is given forks (inside
//! CPython's fork hooks when the app was preloaded) and runs a worker.
//!
//! Signals are blocked and read from a signalfd, so the handlers of the
//! master never reach a worker: after fork the child only unblocks them and
//! starts from the default dispositions, exactly like a single process.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::config::MAX_WORKERS;

/// A worker that could not import the app exits with this status
/// (gunicorn's WORKER_BOOT_ERROR).
pub const WORKER_BOOT_ERROR: i32 = 3;
/// The master wakes at least this often to check heartbeats.
const TICK: Duration = Duration::from_secs(1);
/// Longest pause between restarts of a worker that keeps dying at start.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Time a worker gets past its own limit to finish: its interpreter's
/// shutdown.
const EXIT_MARGIN: Duration = Duration::from_secs(2);
/// Editors save in bursts (write, rename, chmod): reload once it settles.
const RELOAD_SETTLE: Duration = Duration::from_millis(300);

const SIGNALS: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGCHLD,
];

pub struct MasterSettings {
    pub workers: usize,
    /// Zero disables the heartbeat check.
    pub timeout: Duration,
    pub graceful_timeout: Duration,
    /// `--reload`: directories whose Python files are watched; empty = off.
    pub reload_dirs: Vec<PathBuf>,
    /// Was the app imported in the master (`--preload`)? Only for logs:
    /// then a reload cannot pick up new code.
    pub preloaded: bool,
    pub reopen_logs: fn(),
}

/// What a new worker gets from the master.
pub struct WorkerEnv {
    /// The worker's side of the heartbeat (see `worker::Heartbeat`).
    pub heartbeat: File,
    /// 1 for the first worker started, then counting up.
    pub age: u64,
}

/// Forks and runs workers: the part of the master that knows Python.
pub trait Spawner {
    /// fork(2), with whatever the process needs around it (CPython's
    /// PyOS_BeforeFork/AfterFork hooks when it runs Python).
    fn fork(&mut self) -> nix::Result<ForkResult>;
    /// In the child: serve until told to stop. Returns the exit status.
    fn serve(&mut self, env: WorkerEnv) -> i32;
    /// The master stops (TERM, INT, QUIT): close its listening sockets.
    /// Its workers close theirs as they drain; a copy left open here would
    /// let the kernel complete handshakes nobody accepts any more, reset
    /// when the master exits, where a client should be refused (and try
    /// another server). Reloads and resizes keep them to fork new workers.
    fn stop_listening(&mut self);
}

/// Why the master stopped with an error.
#[derive(Debug)]
pub enum MasterError {
    Setup(std::io::Error),
    /// The first workers could not import the app: there is nothing to
    /// serve (the traceback is in the log).
    BootFailed,
}

impl std::fmt::Display for MasterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterError::Setup(e) => write!(f, "cannot set up the master: {e}"),
            MasterError::BootFailed => f.write_str("worker failed to boot"),
        }
    }
}

impl std::error::Error for MasterError {}

impl From<nix::Error> for MasterError {
    fn from(e: nix::Error) -> Self {
        MasterError::Setup(e.into())
    }
}

impl From<std::io::Error> for MasterError {
    fn from(e: std::io::Error) -> Self {
        MasterError::Setup(e)
    }
}

struct Worker {
    pid: Pid,
    age: u64,
    /// Reloads bump the generation; older workers retire once the new
    /// generation is up.
    generation: u64,
    heartbeat: File,
    spawned: Instant,
    /// Its first heartbeat arrived: app imported, loop running.
    ready: bool,
    /// Told to stop (TERM) at this instant.
    retiring: Option<Instant>,
    /// SIGKILL sent; only its exit is awaited.
    killed: bool,
}

impl Worker {
    /// TERM: finish what it serves, then exit; the master no longer counts
    /// it among the workers it keeps.
    fn retire(&mut self, now: Instant) {
        self.retiring = Some(now);
        let _ = kill(self.pid, Signal::SIGTERM);
    }
}

/// The first workers could not import the app: the master stops, and ends
/// with [`MasterError::BootFailed`] once they are gone.
#[derive(Clone, Copy, Debug)]
struct BootFailed;

impl From<BootFailed> for MasterError {
    fn from(_: BootFailed) -> Self {
        MasterError::BootFailed
    }
}

struct Stopping {
    deadline: Instant,
    killed: bool,
    result: Result<(), BootFailed>,
}

struct Master<'a, S: Spawner> {
    settings: MasterSettings,
    spawner: &'a mut S,
    pid: Pid,
    workers: Vec<Worker>,
    desired: usize,
    generation: u64,
    next_age: u64,
    /// Some worker has come up since the start: later boot failures are
    /// retried (old workers keep serving) rather than fatal.
    ever_ready: bool,
    boot_failures: u32,
    spawn_after: Option<Instant>,
    stopping: Option<Stopping>,
    mask: SigSet,
    signals: Option<SignalFd>,
    reload: Option<Reloader>,
    reload_at: Option<Instant>,
}

/// Runs the master until every worker has exited after TERM, INT or QUIT.
pub fn run<S: Spawner>(settings: MasterSettings, spawner: &mut S) -> Result<(), MasterError> {
    let mut mask = SigSet::empty();
    for s in SIGNALS {
        mask.add(s);
    }
    mask.thread_block()?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    let reload = if settings.reload_dirs.is_empty() {
        None
    } else {
        Some(Reloader::start(&settings.reload_dirs)?)
    };
    let mut master = Master {
        desired: settings.workers.clamp(1, MAX_WORKERS),
        settings,
        spawner,
        pid: nix::unistd::getpid(),
        workers: Vec::new(),
        generation: 0,
        next_age: 1,
        ever_ready: false,
        boot_failures: 0,
        spawn_after: None,
        stopping: None,
        mask,
        signals: Some(signals),
        reload,
        reload_at: None,
    };
    log::info!(
        "master {} starting {} worker(s)",
        master.pid,
        master.desired
    );
    master.run()
}

impl<S: Spawner> Master<'_, S> {
    fn run(&mut self) -> Result<(), MasterError> {
        // The first workers start now, not after the first wait.
        self.manage_workers(Instant::now())?;
        loop {
            self.wait()?;
            let now = Instant::now();
            self.handle_signals();
            self.reap(now);
            if let Some(stop) = &mut self.stopping {
                if self.workers.is_empty() {
                    log::info!("master {} exiting", self.pid);
                    return stop.result.map_err(MasterError::from);
                }
                if now >= stop.deadline && !stop.killed {
                    stop.killed = true;
                    log::warn!("{} worker(s) still running: killing", self.workers.len());
                    self.signal_all(Signal::SIGKILL);
                }
                continue;
            }
            self.check_ready();
            if self.reload_at.is_some_and(|t| now >= t) {
                self.reload_at = None;
                self.reload("Python files changed");
            }
            self.retire_old_generation(now);
            self.check_timeouts(now);
            self.manage_workers(now)?;
        }
    }

    /// Sleeps until a signal, a file change or the next check is due.
    fn wait(&mut self) -> Result<(), MasterError> {
        let now = Instant::now();
        let mut timeout = TICK;
        for t in [self.spawn_after, self.reload_at].into_iter().flatten() {
            timeout = timeout.min(t.saturating_duration_since(now));
        }
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let Some(signals) = &self.signals else {
            return Ok(());
        };
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(r) = &self.reload {
            fds.push(PollFd::new(r.wake.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(ms.max(1))) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(r) = &mut self.reload {
            if r.drain() {
                self.reload_at = Some(Instant::now() + RELOAD_SETTLE);
            }
        }
        Ok(())
    }

    fn handle_signals(&mut self) {
        let mut pending = Vec::new();
        if let Some(fd) = &self.signals {
            while let Ok(Some(info)) = fd.read_signal() {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    pending.push(sig);
                }
            }
        }
        for sig in pending {
            match sig {
                Signal::SIGCHLD => {} // reaped right after
                Signal::SIGTERM => self.stop(Signal::SIGTERM),
                Signal::SIGINT | Signal::SIGQUIT => self.stop(Signal::SIGQUIT),
                Signal::SIGHUP if self.stopping.is_none() => self.reload("SIGHUP"),
                Signal::SIGTTIN if self.stopping.is_none() => {
                    self.desired = (self.desired + 1).min(MAX_WORKERS);
                    log::info!("SIGTTIN: {} worker(s)", self.desired);
                }
                Signal::SIGTTOU if self.stopping.is_none() => {
                    self.desired = self.desired.saturating_sub(1).max(1);
                    log::info!("SIGTTOU: {} worker(s)", self.desired);
                }
                Signal::SIGUSR1 => {
                    log::info!("SIGUSR1: reopening log files");
                    (self.settings.reopen_logs)();
                    self.signal_all(Signal::SIGUSR1);
                }
                _ => {}
            }
        }
    }

    /// TERM: workers finish what they serve within --graceful-timeout.
    /// QUIT (from INT or QUIT): they exit at once; one stuck in the app
    /// (which the signal cannot interrupt) is killed after EXIT_MARGIN. A
    /// second INT or QUIT kills what is left.
    fn stop(&mut self, how: Signal) {
        let now = Instant::now();
        match &mut self.stopping {
            Some(stop) if how == Signal::SIGQUIT => {
                if !stop.killed {
                    log::info!("second quick stop: killing the workers");
                    stop.killed = true;
                    self.signal_all(Signal::SIGKILL);
                }
            }
            Some(_) => {}
            None => {
                let kind = if how == Signal::SIGTERM {
                    "graceful"
                } else {
                    "quick"
                };
                log::info!("{kind} stop: signalling {} worker(s)", self.workers.len());
                // Draining workers end themselves at the graceful timeout;
                // the margin covers their interpreter shutdown.
                let limit = if how == Signal::SIGTERM {
                    self.settings.graceful_timeout
                } else {
                    Duration::ZERO
                };
                self.stopping = Some(Stopping {
                    deadline: now + limit + EXIT_MARGIN,
                    killed: false,
                    result: Ok(()),
                });
                // Before the workers drain: once they have, nothing listens.
                self.spawner.stop_listening();
                self.signal_all(how);
            }
        }
    }

    fn reload(&mut self, why: &str) {
        self.generation += 1;
        self.boot_failures = 0;
        self.spawn_after = None;
        if self.settings.preloaded {
            log::info!(
                "{why}: restarting workers (with --preload they run the code the master \
                 imported at start)"
            );
        } else {
            log::info!("{why}: starting new workers; the old ones drain once they are up");
        }
    }

    fn signal_all(&mut self, sig: Signal) {
        for w in &mut self.workers {
            if w.killed {
                continue;
            }
            if sig == Signal::SIGKILL {
                w.killed = true;
            }
            let _ = kill(w.pid, sig);
        }
    }

    fn reap(&mut self, now: Instant) {
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let (pid, code, signal) = match status {
                WaitStatus::Exited(pid, code) => (pid, Some(code), None),
                WaitStatus::Signaled(pid, sig, _) => (pid, None, Some(sig)),
                _ => continue,
            };
            let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            let mut w = self.workers.swap_remove(i);
            // It may have come up and served (a small --max-requests) since
            // the last check: that is no failure to start.
            if !w.ready && last_beat(&w.heartbeat).is_some() {
                w.ready = true;
                self.ever_ready = true;
                self.boot_failures = 0;
            }
            let how = match (code, signal) {
                (Some(c), _) => format!("exited with status {c}"),
                (_, Some(s)) => format!("was killed by {s}"),
                _ => String::from("exited"),
            };
            if self.stopping.is_some() || w.retiring.is_some() || w.killed {
                log::info!("worker {pid} {how}");
                continue;
            }
            if w.ready {
                if code == Some(0) {
                    log::info!("worker {pid} exited (request budget served); replacing it");
                } else {
                    log::error!("worker {pid} {how}; replacing it");
                }
                continue;
            }
            // Died before it came up.
            if code == Some(WORKER_BOOT_ERROR) && !self.ever_ready {
                log::error!("worker {pid} failed to load the application; stopping");
                self.stop(Signal::SIGTERM);
                if let Some(stop) = &mut self.stopping {
                    stop.result = Err(BootFailed);
                }
                return;
            }
            self.boot_failures += 1;
            let delay = Duration::from_secs(1 << self.boot_failures.min(5)).min(MAX_BACKOFF);
            self.spawn_after = Some(now + delay);
            log::error!(
                "worker {pid} {how} while starting; next start in {}s",
                delay.as_secs()
            );
        }
    }

    fn check_ready(&mut self) {
        for w in self.workers.iter_mut().filter(|w| !w.ready) {
            if last_beat(&w.heartbeat).is_some() {
                w.ready = true;
                self.ever_ready = true;
                self.boot_failures = 0;
                log::debug!("worker {} is up", w.pid);
            }
        }
    }

    /// After a reload, the old workers drain once the new ones serve.
    fn retire_old_generation(&mut self, now: Instant) {
        let up = self
            .workers
            .iter()
            .filter(|w| w.generation == self.generation && w.ready && w.retiring.is_none())
            .count();
        if up < self.desired {
            return;
        }
        for w in &mut self.workers {
            if w.generation < self.generation && w.retiring.is_none() {
                w.retire(now);
            }
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        let timeout = self.settings.timeout;
        let graceful = self.settings.graceful_timeout + EXIT_MARGIN;
        for w in &mut self.workers {
            if w.killed {
                continue;
            }
            let stuck = if let Some(since) = w.retiring {
                // Draining ends itself at the graceful timeout.
                now.duration_since(since) > graceful
            } else if timeout.is_zero() {
                false
            } else if w.ready {
                last_beat(&w.heartbeat)
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|silent| silent > timeout)
            } else {
                now.duration_since(w.spawned) > timeout
            };
            if stuck {
                log::error!("WORKER TIMEOUT (pid:{}): killing it", w.pid);
                w.killed = true;
                let _ = kill(w.pid, Signal::SIGKILL);
            }
        }
    }

    fn manage_workers(&mut self, now: Instant) -> Result<(), MasterError> {
        let mut active: Vec<usize> = (0..self.workers.len())
            .filter(|&i| {
                let w = &self.workers[i];
                w.generation == self.generation && w.retiring.is_none() && !w.killed
            })
            .collect();
        if active.len() > self.desired {
            // TTOU: the youngest go first.
            active.sort_by_key(|&i| std::cmp::Reverse(self.workers[i].age));
            for &i in &active[..active.len() - self.desired] {
                self.workers[i].retire(now);
            }
            return Ok(());
        }
        if self.spawn_after.is_some_and(|t| now < t) {
            return Ok(());
        }
        self.spawn_after = None;
        for _ in active.len()..self.desired {
            self.spawn()?;
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), MasterError> {
        let heartbeat = tempfile::tempfile()?;
        // The epoch means "not up yet"; the worker's first beat moves it.
        heartbeat.set_modified(SystemTime::UNIX_EPOCH)?;
        let age = self.next_age;
        self.next_age += 1;
        log::logger().flush();
        match self.spawner.fork() {
            Ok(ForkResult::Parent { child }) => {
                log::info!("Booting worker with pid: {child}");
                self.workers.push(Worker {
                    pid: child,
                    age,
                    generation: self.generation,
                    heartbeat,
                    spawned: Instant::now(),
                    ready: false,
                    retiring: None,
                    killed: false,
                });
                Ok(())
            }
            Ok(ForkResult::Child) => self.become_worker(heartbeat, age),
            Err(e) => {
                log::error!("cannot fork a worker: {e}; retrying in 1s");
                self.spawn_after = Some(Instant::now() + Duration::from_secs(1));
                Ok(())
            }
        }
    }

    /// The child's side of `spawn`: shed the master's state and serve.
    fn become_worker(&mut self, heartbeat: File, age: u64) -> ! {
        drop(self.signals.take());
        if let Some(r) = self.reload.take() {
            // The watcher's thread did not survive the fork; its Drop
            // would try to stop it.
            std::mem::forget(r);
        }
        self.workers.clear();
        // USR1 is forwarded to every worker, booting ones included: until
        // the event loop handles it, its default action would kill the
        // worker. It stays blocked (a USR1 sent meanwhile stays pending)
        // until the loop unblocks it.
        let mut boot_mask = self.mask;
        boot_mask.remove(Signal::SIGUSR1);
        let _ = boot_mask.thread_unblock();
        // A worker whose master is gone stops gracefully instead of
        // serving on unsupervised.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
        if nix::unistd::getppid() != self.pid {
            std::process::exit(0);
        }
        let code = self.spawner.serve(WorkerEnv { heartbeat, age });
        log::logger().flush();
        std::process::exit(code)
    }
}

/// The worker's last heartbeat; `None` while it is still at the epoch (the
/// worker has not come up) or cannot be read.
fn last_beat(heartbeat: &File) -> Option<SystemTime> {
    let beat = heartbeat.metadata().and_then(|m| m.modified()).ok()?;
    (beat > SystemTime::UNIX_EPOCH).then_some(beat)
}

/// `--reload`: watches directories for changed `.py` files and pokes the
/// master through a socket pair (the watcher runs on its own thread).
struct Reloader {
    wake: UnixStream,
    _watcher: notify::RecommendedWatcher,
}

impl Reloader {
    fn start(dirs: &[PathBuf]) -> Result<Reloader, MasterError> {
        use notify::{EventKind, RecursiveMode, Watcher};
        use std::io::Write;
        let (wake, poke) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        poke.set_nonblocking(true)?;
        let roots = dirs.to_vec();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            if event.paths.iter().any(|p| is_watched_source(p, &roots)) {
                // A full buffer already holds a pending wake-up.
                let _ = (&poke).write(b"!");
            }
        })
        .map_err(|e| MasterError::Setup(std::io::Error::other(e)))?;
        for dir in dirs {
            watcher.watch(dir, RecursiveMode::Recursive).map_err(|e| {
                MasterError::Setup(std::io::Error::other(format!("{}: {e}", dir.display())))
            })?;
        }
        log::info!(
            "--reload: watching Python files under {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Reloader {
            wake,
            _watcher: watcher,
        })
    }

    /// True when something changed since the last call.
    fn drain(&mut self) -> bool {
        let mut buf = [0u8; 64];
        let mut any = false;
        while let Ok(n) = self.wake.read(&mut buf) {
            if n == 0 {
                break;
            }
            any = true;
        }
        any
    }
}

/// A `.py` file outside caches and hidden directories (virtualenvs such as
/// `.venv`, VCS metadata) below one of the watched `roots`. Only the part
/// below the root is judged: the project itself may well live in a hidden
/// directory (`~/.local/src/app`, a temporary directory).
fn is_watched_source(path: &std::path::Path, roots: &[PathBuf]) -> bool {
    let below = roots
        .iter()
        .find_map(|r| path.strip_prefix(r).ok())
        .unwrap_or(path);
    path.extension().is_some_and(|e| e == "py")
        && !below.components().any(|c| {
            let s = c.as_os_str().to_string_lossy();
            s == "__pycache__" || (s.starts_with('.') && s.len() > 1 && s != "..")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn watched_sources() {
        let roots = [PathBuf::from("/srv/app")];
        let watched = |p: &str| is_watched_source(Path::new(p), &roots);
        assert!(watched("/srv/app/views.py"));
        assert!(is_watched_source(Path::new("./app.py"), &[]));
        assert!(!watched("/srv/app/views.pyc"));
        assert!(!watched("/srv/app/__pycache__/v.py"));
        assert!(!watched("/srv/app/.venv/lib/x.py"));
        assert!(!watched("/srv/app/README"));
        // A hidden directory above the root does not count.
        let roots = [
            PathBuf::from("/tmp/.tmpAbC"),
            PathBuf::from("/home/u/.local/src"),
        ];
        assert!(is_watched_source(Path::new("/tmp/.tmpAbC/app.py"), &roots));
        assert!(is_watched_source(
            Path::new("/home/u/.local/src/pkg/m.py"),
            &roots
        ));
        assert!(!is_watched_source(
            Path::new("/tmp/.tmpAbC/.git/x.py"),
            &roots
        ));
    }
}
