//! The event loop: the only module that knows mio and slab.
//!
//! One thread polls the listening sockets, the connections (in a slab,
//! keyed by token) and a signal pipe. Connections are edge-triggered and
//! driven until they would block; deadlines (keep-alive idle, head timeout)
//! are checked once per tick. SIGTERM/SIGINT start a graceful drain.
//! `Server` holds the bound sockets until `run`, which hands them to an
//! `EventLoop`: its `run` is the outline of one turn, each step a method.

use std::collections::VecDeque;
use std::io;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1};
use signal_hook_mio::v1_0::Signals as SignalPipe;
use slab::Slab;

use crate::http::date::DateCache;
use crate::serve::app::{App, ConnSettings, Local, Peer};
use crate::serve::conn::{Conn, Ctx, Progress, Stream, TIME_BUDGET};
use crate::serve::listen::ListenSocket;
use crate::serve::stop::{Signals, StopRequest, Stopper};

const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);
const STOP_TOKEN: Token = Token(usize::MAX - 2);
/// Listener i has token `LISTENER_BASE - i`; connections use their slab key.
const LISTENER_BASE: usize = usize::MAX - 3;
/// Deadlines are checked at least this often.
const TICK: Duration = Duration::from_millis(500);
/// Pause accepting after EMFILE/ENFILE instead of spinning on a listener
/// that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections accepted (and their first request served) per listener
/// before the loop turns again: under a steady stream of new clients the
/// accept loop would otherwise never return to signals, timers, the other
/// connections and a worker's heartbeat.
const ACCEPT_BATCH: usize = 16;
const EMFILE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Setup(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A connected client socket of either family, with the readiness it is
/// registered for.
pub struct Socket {
    kind: SocketKind,
    /// Registered for writable too. Only while output is blocked: always-on
    /// write interest under edge triggering wakes the loop for every ACK.
    write_interest: bool,
    /// sendfile(2) refused this socket (or the files sent to it): copy
    /// through a buffer from then on instead of failing every call.
    no_sendfile: bool,
}

enum SocketKind {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn new(kind: SocketKind) -> Self {
        Socket {
            kind,
            write_interest: false,
            no_sendfile: false,
        }
    }
}

impl io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.kind {
            SocketKind::Tcp(s) => s.read(buf),
            SocketKind::Unix(s) => s.read(buf),
        }
    }
}

// send(2)/sendmsg(2) rather than write(2)/writev(2): the socket calls skip
// the VFS layer (`vfs_writev`, `sock_write_iter`) that a file write goes
// through, and MSG_NOSIGNAL makes a closed peer an EPIPE without SIGPIPE.
impl io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.kind {
            SocketKind::Tcp(s) => socket2::SockRef::from(s).send(buf),
            SocketKind::Unix(s) => socket2::SockRef::from(s).send(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &self.kind {
            SocketKind::Tcp(s) => socket2::SockRef::from(s).send_vectored(bufs),
            SocketKind::Unix(s) => socket2::SockRef::from(s).send_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Socket {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match &mut self.kind {
            SocketKind::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            SocketKind::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        match &mut self.kind {
            SocketKind::Tcp(s) => s.set_nodelay(nodelay),
            SocketKind::Unix(_) => Ok(()),
        }
    }

    /// sendfile(2): the kernel moves the bytes from the page cache to the
    /// socket; nothing passes through this process. The socket is
    /// non-blocking, so a full socket is EAGAIN (WouldBlock) and a partial
    /// send returns the count, like `write`.
    #[cfg(target_os = "linux")]
    fn sendfile(&mut self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        if !self.no_sendfile {
            let socket_fd = match &self.kind {
                SocketKind::Tcp(s) => s.as_raw_fd(),
                SocketKind::Unix(s) => s.as_raw_fd(),
            };
            let mut off = libc::off_t::try_from(offset)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: both descriptors are open for the whole call (borrowed
            // from `self` and `file`); `off` is a live local the kernel
            // updates; `len` only bounds how much the kernel moves.
            let n = unsafe { libc::sendfile(socket_fd, file.as_raw_fd(), &mut off, len) };
            if let Ok(n) = usize::try_from(n) {
                return Ok(n);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // Not every socket family or file system supports it.
                Some(libc::EINVAL | libc::ENOSYS) => {
                    log::debug!("sendfile(2) refused ({err}); copying through a buffer instead");
                    self.no_sendfile = true;
                }
                _ => return Err(err),
            }
        }
        crate::serve::conn::copy_file_block(self, file, offset, len)
    }
}

impl mio::event::Source for Socket {
    fn register(&mut self, r: &mio::Registry, t: Token, i: Interest) -> io::Result<()> {
        match &mut self.kind {
            SocketKind::Tcp(s) => s.register(r, t, i),
            SocketKind::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &mio::Registry, t: Token, i: Interest) -> io::Result<()> {
        match &mut self.kind {
            SocketKind::Tcp(s) => s.reregister(r, t, i),
            SocketKind::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        match &mut self.kind {
            SocketKind::Tcp(s) => s.deregister(r),
            SocketKind::Unix(s) => s.deregister(r),
        }
    }
}

enum MioListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

struct Listener {
    socket: MioListener,
    local: Rc<Local>,
}

impl Listener {
    fn accept(&self) -> io::Result<(Socket, Peer)> {
        match &self.socket {
            MioListener::Tcp(l) => {
                let (s, addr) = l.accept()?;
                // Responses go out in one write each; Nagle would only add
                // latency (the 40 ms delayed-ACK stall on small writes).
                let _ = s.set_nodelay(true);
                Ok((Socket::new(SocketKind::Tcp(s)), Peer::Tcp(addr)))
            }
            MioListener::Unix(l) => {
                let (s, _) = l.accept()?;
                Ok((Socket::new(SocketKind::Unix(s)), Peer::Unix))
            }
        }
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        match &mut self.socket {
            MioListener::Tcp(l) => l,
            MioListener::Unix(l) => l,
        }
    }
}

/// Whether the server takes new connections right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accepting {
    Open,
    /// A batch was taken and more clients may be queued: take them on the
    /// next turn, without waiting in poll (edge-triggered readiness will
    /// not report them again).
    More,
    /// `--max-connections` reached: resume when one closes.
    Full,
    /// Out of file descriptors: resume at this instant, not in a busy loop.
    Backoff(Instant),
}

/// What the server runs with, beyond what each connection needs.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub conn: ConnSettings,
    pub graceful_timeout: Duration,
    pub max_connections: usize,
    /// SIGUSR1: reopen log files (after logrotate moved them).
    pub reopen_logs: fn(),
    /// A worker under a master: signals meant for the master are ignored
    /// quietly.
    pub worker: bool,
    /// Whether the loop reads the process's signals (the command line) or
    /// none (a server embedded in a Python process).
    pub signals: Signals,
}

/// The signals whose default action would kill (HUP, USR1) or stop (TTIN,
/// TTOU) a process that is still importing its app: blocked until
/// [`Server::run`] handles them.
pub(crate) fn startup_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        set.add(signal);
    }
    set
}

/// The command line's signals, read through a pipe; then the signals held
/// back during the start are let through: a worker starts with USR1
/// blocked (see master.rs), a single process with all of
/// `startup_signals` (main.rs), and any that arrived meanwhile is
/// delivered now.
fn register_signals(registry: &mio::Registry) -> io::Result<SignalPipe> {
    let mut pipe = SignalPipe::new([SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGTTIN, SIGTTOU])?;
    registry.register(&mut pipe, SIGNAL_TOKEN, Interest::READABLE)?;
    startup_signals().thread_unblock()?;
    Ok(pipe)
}

/// Bound listening sockets, ready to serve.
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    settings: ServerSettings,
    stopper: Stopper,
}

impl Server {
    /// Takes over listening sockets (from [`crate::serve::listen`]). Nothing is
    /// accepted until [`Server::run`].
    pub fn new(
        sockets: Vec<(ListenSocket, Local)>,
        settings: ServerSettings,
    ) -> Result<Server, StartError> {
        let poll = Poll::new().map_err(StartError::Setup)?;
        let stopper = Stopper::new(poll.registry(), STOP_TOKEN).map_err(StartError::Setup)?;
        let listeners = sockets
            .into_iter()
            .map(|(socket, local)| {
                let socket = match socket {
                    ListenSocket::Tcp(l) => MioListener::Tcp(TcpListener::from_std(l)),
                    ListenSocket::Unix(l) => MioListener::Unix(UnixListener::from_std(l)),
                };
                Listener {
                    socket,
                    local: Rc::new(local),
                }
            })
            .collect();
        Ok(Server {
            poll,
            listeners,
            settings,
            stopper,
        })
    }

    /// A handle that stops this server from any thread, before or while
    /// it runs.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Serves until SIGTERM/SIGINT (with [`Signals::Process`]) or a
    /// [`Stopper`] (then drains), or until the app asks to stop from a
    /// signal handler.
    pub fn run<A: App>(self, app: &mut A) -> io::Result<()> {
        EventLoop::start(self, app)?.run()
    }
}

/// The running server: what one turn of the loop reads and changes.
///
/// Fields drop in declaration order: the connections (whose iterables'
/// `close()` may run app code) go first, while the signal handlers are
/// still registered and the listeners still open.
struct EventLoop<'a, A: App> {
    app: &'a mut A,
    conns: Slab<Conn<Socket, A::Response>>,
    /// Connections that yielded with work left (a streaming iterable).
    ready: VecDeque<usize>,
    /// The ready queue's turn was skipped last time (see `run_ready`).
    passed_over: bool,
    /// Connections with responses queued for the end of this turn.
    deferred: Vec<usize>,
    conn_settings: Rc<ConnSettings>,
    /// The process's signals, read by the command line's loop only.
    signals: Option<SignalPipe>,
    stopper: Stopper,
    poll: Poll,
    listeners: Vec<Listener>,
    settings: ServerSettings,
    accepting: Accepting,
    draining_since: Option<Instant>,
    next_tick: Instant,
    /// When EMFILE was last logged.
    emfile_logged: Option<Instant>,
}

impl<'a, A: App> EventLoop<'a, A> {
    /// Registers the listeners and the signal pipe, then lets the signals
    /// held back during the start through.
    fn start(server: Server, app: &'a mut A) -> io::Result<Self> {
        let Server {
            poll,
            mut listeners,
            settings,
            stopper,
        } = server;
        let registry = poll.registry();
        for (i, l) in listeners.iter_mut().enumerate() {
            registry.register(l.source(), Token(LISTENER_BASE - i), Interest::READABLE)?;
        }
        let signals = match settings.signals {
            Signals::Process => Some(register_signals(registry)?),
            Signals::None => None,
        };
        Ok(EventLoop {
            poll,
            signals,
            stopper,
            listeners,
            conn_settings: Rc::new(settings.conn.clone()),
            settings,
            app,
            conns: Slab::with_capacity(1024),
            ready: VecDeque::new(),
            passed_over: false,
            deferred: Vec::with_capacity(1024),
            accepting: Accepting::Open,
            draining_since: None,
            next_tick: Instant::now() + TICK,
            emfile_logged: None,
        })
    }

    /// One turn per wake-up, until a drain ends or a signal says exit now.
    fn run(mut self) -> io::Result<()> {
        // Locals, not fields: the methods below borrow `self` mutably while
        // the turn's events and its `Ctx` (which borrows the date) are read.
        let mut events = Events::with_capacity(1024);
        let mut dates = DateCache::new();
        loop {
            self.wait(&mut events)?;
            let now = Instant::now();
            let ControlFlow::Continue(stop) = self.read_signals(&events) else {
                return Ok(());
            };
            let begin_drain = stop && self.draining_since.is_none();
            let ctx = Ctx {
                now,
                date: dates.now(),
                draining: begin_drain || self.draining_since.is_some(),
            };
            if begin_drain {
                self.begin_drain(&ctx);
            }
            // The next batch of clients left queued last turn.
            if self.accepting == Accepting::More {
                self.accept_everywhere(&ctx);
            }
            for event in events.iter() {
                self.handle_event(event, &ctx);
            }
            self.run_ready(&ctx);
            // A slot freed up: take the clients that queued meanwhile.
            if self.accepting == Accepting::Full && self.conns.len() < self.settings.max_connections
            {
                self.accept_everywhere(&ctx);
            }
            if now >= self.next_tick {
                self.tick(&ctx);
            }
            // Every response of this turn, written back to back (timeouts
            // may have queued a 408 too).
            self.flush_deferred(&ctx);
            if self.drain_over(now) {
                return Ok(());
            }
        }
    }

    /// Sleeps in `poll` (with whatever the app holds released) until an
    /// event or the next tick; not at all while work is queued.
    fn wait(&mut self, events: &mut Events) -> io::Result<()> {
        let more = self.accepting == Accepting::More && self.draining_since.is_none();
        let timeout = if self.ready.is_empty() && !more {
            self.next_tick.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        let poll = &mut self.poll;
        match self.app.idle(move || poll.poll(events, Some(timeout))) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    /// Runs the app's signal handlers, then reads ours: breaks when one
    /// says exit now, continues with `true` when one asks to stop (drain).
    ///
    /// Signals first: signal-hook reports a signal once however often it
    /// arrived since the last read, so reading it before running app code
    /// keeps a second SIGINT from merging into the first.
    fn read_signals(&mut self, events: &Events) -> ControlFlow<(), bool> {
        // `stop` also comes from a Python signal handler that raised.
        let mut stop = self.app.after_wake() || !self.app.wants_connections();
        match self.stopper.requested() {
            StopRequest::None => {}
            StopRequest::Graceful(_) => stop = true,
            StopRequest::Now => return ControlFlow::Break(()),
        }
        let signalled = events.iter().any(|e| e.token() == SIGNAL_TOKEN);
        if let Some(pipe) = self.signals.as_mut().filter(|_| signalled) {
            for signal in pipe.pending() {
                log::debug!("received signal {signal}");
                match signal {
                    SIGINT if self.draining_since.is_some() => {
                        log::info!("second SIGINT: exiting now");
                        return ControlFlow::Break(());
                    }
                    SIGQUIT => {
                        log::info!("SIGQUIT: exiting now");
                        return ControlFlow::Break(());
                    }
                    SIGTERM | SIGINT => stop = true,
                    SIGUSR1 => (self.settings.reopen_logs)(),
                    // Their default actions (terminate, stop the process)
                    // would surprise anyone used to sending them to a
                    // gunicorn master.
                    _ if self.settings.worker => {}
                    _ => log::warn!(
                        "signal {signal} ignored: reloading and resizing need workers \
                         (-w 2 or more, --max-requests, --timeout or --reload)"
                    ),
                }
            }
        }
        ControlFlow::Continue(stop)
    }

    /// A listener's event accepts; a connection's drives it.
    fn handle_event(&mut self, event: &mio::event::Event, ctx: &Ctx<'_>) {
        match event.token() {
            SIGNAL_TOKEN | STOP_TOKEN => {}
            Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => {
                if self.accepting == Accepting::Open && self.draining_since.is_none() {
                    self.accepting = self.accept_batch(LISTENER_BASE - t, ctx);
                }
            }
            Token(key) => {
                if let Some(conn) = self.conns.get_mut(key) {
                    if event.is_read_closed() {
                        conn.on_peer_closed();
                    }
                    let progress = conn.drive(&mut *self.app, ctx);
                    self.settle(key, progress);
                }
            }
        }
    }

    /// A turn for the connections that yielded (streaming responses), in
    /// order, while this wake-up is under its time budget; those that
    /// yield again wait for the next turn. When the events alone used the
    /// budget, the turn waits for the next poll (once: a connection passed
    /// over is served next time whatever the load), so signals and new
    /// events are looked at between two long stretches of app code.
    fn run_ready(&mut self, ctx: &Ctx<'_>) {
        let skip = ctx.now.elapsed() > TIME_BUDGET && !self.passed_over;
        self.passed_over = skip && !self.ready.is_empty();
        let turns = if skip { 0 } else { self.ready.len() };
        for i in 0..turns {
            if i > 0 && ctx.now.elapsed() > TIME_BUDGET {
                break;
            }
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            self.drive(key, ctx);
        }
    }

    /// Every tick: accepting again after an EMFILE backoff, and the
    /// connections' deadlines.
    fn tick(&mut self, ctx: &Ctx<'_>) {
        self.next_tick = ctx.now + TICK;
        if let Accepting::Backoff(until) = self.accepting {
            if ctx.now >= until {
                self.accept_everywhere(ctx);
            }
        }
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline().is_some_and(|d| d <= ctx.now))
            .map(|(k, _)| k)
            .collect();
        for key in expired {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let mut progress = conn.on_timeout(ctx);
            if progress == Progress::Open {
                // A 408 may have been queued: push it out.
                progress = conn.drive(&mut *self.app, ctx);
            }
            self.settle(key, progress);
        }
    }

    /// Writes the responses that connections left queued this turn
    /// (`Progress::Flush`), back to back, before the loop sleeps.
    fn flush_deferred(&mut self, ctx: &Ctx<'_>) {
        let mut pending = std::mem::take(&mut self.deferred);
        for &key in &pending {
            if let Some(conn) = self.conns.get_mut(key) {
                let progress = conn.flush_deferred(ctx);
                self.settle(key, progress);
            }
        }
        // Keep the allocation for the next turn.
        if self.deferred.is_empty() {
            pending.clear();
            self.deferred = pending;
        }
    }

    /// Stops accepting and closes idle connections. Busy ones finish their
    /// current response; so do those whose next request already waits in
    /// the socket buffer, and those just accepted, for their first request
    /// (see `Conn::on_drain`). So do the clients already queued on
    /// the listeners (their handshake done, so they count on an answer):
    /// closing a listener would reset them. Those beyond --max-connections
    /// are reset still.
    fn begin_drain(&mut self, ctx: &Ctx<'_>) {
        let now = ctx.now;
        self.draining_since = Some(now);
        for i in 0..self.listeners.len() {
            // A batch per call; `More` only says the batch ran out, unless
            // the app wants no more (a worker's spent request budget).
            while self.accept_batch(i, ctx) == Accepting::More && self.app.wants_connections() {}
        }
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(l.source());
        }
        self.listeners.clear();
        // Logged once nothing here listens: a reader of the log (the tests
        // too) may take the line to mean that new clients are refused.
        log::info!(
            "shutting down: finishing {} connection(s), at most {:?}",
            self.conns.len(),
            self.graceful_timeout()
        );
        // Once per drain, so the list is no cost per request.
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                let progress = conn.on_drain(&mut *self.app, ctx);
                self.settle(key, progress);
            }
        }
    }

    /// The drain's time: the server's, or less if a stop asked for less.
    fn graceful_timeout(&self) -> Duration {
        match self.stopper.requested() {
            StopRequest::Graceful(Some(t)) => t.min(self.settings.graceful_timeout),
            _ => self.settings.graceful_timeout,
        }
    }

    /// A drain is over once no connection is left or its time is up.
    fn drain_over(&self, now: Instant) -> bool {
        let Some(since) = self.draining_since else {
            return false;
        };
        if self.conns.is_empty() {
            log::info!("all connections finished; exiting");
            return true;
        }
        if now.duration_since(since) >= self.graceful_timeout() {
            log::warn!(
                "graceful timeout: closing {} unfinished connection(s)",
                self.conns.len()
            );
            return true;
        }
        false
    }
}

/// Accepting and settling connections.
impl<A: App> EventLoop<'_, A> {
    /// Resumes accepting after a pause (batch, limit or backoff) on every
    /// listener: edge-triggered readiness reports nothing for connections
    /// that queued during the pause, so they are taken now. Never while
    /// draining.
    fn accept_everywhere(&mut self, ctx: &Ctx<'_>) {
        if self.draining_since.is_some() {
            return;
        }
        let mut accepting = Accepting::Open;
        for i in 0..self.listeners.len() {
            match self.accept_batch(i, ctx) {
                Accepting::Open => {}
                // The other listeners still get their batch.
                Accepting::More => accepting = Accepting::More,
                stopped => {
                    accepting = stopped;
                    break;
                }
            }
        }
        self.accepting = accepting;
    }

    /// Accepts until the listener would block, a batch is taken, the app
    /// wants no more connections, the connection limit is reached, or the
    /// process runs out of file descriptors.
    fn accept_batch(&mut self, i: usize, ctx: &Ctx<'_>) -> Accepting {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = self.listeners.get(i) else {
                return Accepting::Open;
            };
            // Checked per connection: a worker's request budget can run out
            // within a batch. The next turn begins the drain.
            if !self.app.wants_connections() {
                return Accepting::More;
            }
            if self.conns.len() >= self.settings.max_connections {
                self.log_full();
                return Accepting::Full;
            }
            match listener.accept() {
                Ok((socket, peer)) => {
                    let local = listener.local.clone();
                    self.open(socket, peer, local, ctx);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepting::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Every backoff would log again: once a minute is plenty.
                    let last = self.emfile_logged;
                    if last.is_none_or(|t| ctx.now.duration_since(t) >= EMFILE_LOG_EVERY) {
                        self.emfile_logged = Some(ctx.now);
                        log::error!(
                            "accept: {e}; pausing accepts for {ACCEPT_BACKOFF:?} at a time \
                             (raise the open-files limit or lower --max-connections)"
                        );
                    }
                    return Accepting::Backoff(ctx.now + ACCEPT_BACKOFF);
                }
                Err(e) => {
                    // ECONNABORTED and friends concern one client only.
                    log::debug!("accept: {e}");
                    continue;
                }
            }
        }
        Accepting::More
    }

    fn log_full(&self) {
        // At the limit this repeats for every freed slot: warn once.
        static WARNED: std::sync::Once = std::sync::Once::new();
        let mut first = false;
        WARNED.call_once(|| first = true);
        let level = if first {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "{} connections open (--max-connections): not accepting until one closes",
            self.conns.len()
        );
    }

    /// Registers an accepted socket and serves what it already sent.
    fn open(&mut self, mut socket: Socket, peer: Peer, local: Rc<Local>, ctx: &Ctx<'_>) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, Token(key), Interest::READABLE)
        {
            log::warn!("cannot register connection: {e}");
            return;
        }
        let conn = entry.insert(Conn::new(
            socket,
            peer,
            local,
            self.conn_settings.clone(),
            ctx.now,
        ));
        // The request may already be waiting; edge-triggered readiness
        // only reports what arrives from now on.
        let progress = conn.drive(&mut *self.app, ctx);
        self.settle(key, progress);
    }

    /// Drives a connection, if it is still open, and acts on the outcome.
    fn drive(&mut self, key: usize, ctx: &Ctx<'_>) {
        if let Some(conn) = self.conns.get_mut(key) {
            let progress = conn.drive(&mut *self.app, ctx);
            self.settle(key, progress);
        }
    }

    /// Acts on what a connection's `drive` returned.
    fn settle(&mut self, key: usize, progress: Progress) {
        match progress {
            Progress::Open | Progress::Yield => {
                if progress == Progress::Yield {
                    self.ready.push_back(key);
                }
                self.update_interest(key);
            }
            Progress::Closed => self.close(key),
            Progress::Flush | Progress::FlushThenResume => self.deferred.push(key),
        }
    }

    /// Registers for writable while output is blocked, and only then.
    fn update_interest(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let want = conn.wants_write();
        let socket = conn.stream_mut();
        if socket.write_interest == want {
            return;
        }
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match self
            .poll
            .registry()
            .reregister(socket, Token(key), interest)
        {
            Ok(()) => socket.write_interest = want,
            Err(e) => {
                log::warn!("cannot update readiness interest: {e}");
                self.close(key);
            }
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(conn.stream_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::thread;

    fn temp_file(data: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(data).expect("write temp file");
        f
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 253) as u8).collect()
    }

    fn tcp_pair() -> (Socket, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        (
            Socket::new(SocketKind::Tcp(TcpStream::from_std(server))),
            client,
        )
    }

    fn unix_pair() -> (Socket, std::os::unix::net::UnixStream) {
        let (server, client) = std::os::unix::net::UnixStream::pair().expect("pair");
        server.set_nonblocking(true).expect("nonblocking");
        (
            Socket::new(SocketKind::Unix(UnixStream::from_std(server))),
            client,
        )
    }

    /// Sends `file[offset..offset+len]` the way a connection does (partial
    /// sends, WouldBlock = wait) while `reader` drains the other end.
    fn send_all<R: Read + Send + 'static>(
        socket: &mut Socket,
        mut reader: R,
        file: &std::fs::File,
        mut offset: u64,
        mut len: usize,
    ) -> Vec<u8> {
        let drain = thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).expect("read");
            got
        });
        let mut blocked = 0;
        while len > 0 {
            match socket.sendfile(file, offset, len) {
                Ok(0) => panic!("file ended early"),
                Ok(n) => {
                    offset += n as u64;
                    len -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked += 1;
                    assert!(blocked < 1_000_000, "never writable");
                    thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("sendfile: {e}"),
            }
        }
        socket.shutdown_write().expect("shutdown");
        drain.join().expect("reader")
    }

    #[test]
    fn sendfile_moves_a_file_range_over_tcp_and_unix() {
        let body = data(5 << 20);
        let file = temp_file(&body);
        let (mut socket, client) = tcp_pair();
        let got = send_all(&mut socket, client, &file, 1000, body.len() - 3000);
        assert!(got == body[1000..body.len() - 2000], "tcp bytes differ");
        assert!(!socket.no_sendfile, "fell back to copying on TCP");

        let (mut socket, client) = unix_pair();
        let got = send_all(&mut socket, client, &file, 7, body.len() - 7);
        assert!(got == body[7..], "unix bytes differ");
        assert!(!socket.no_sendfile, "fell back to copying on a unix socket");

        // The copying fallback, on a real socket.
        let (mut socket, client) = tcp_pair();
        socket.no_sendfile = true;
        let got = send_all(&mut socket, client, &file, 0, body.len());
        assert!(got == body, "copied bytes differ");
    }

    #[test]
    fn sendfile_full_socket_is_wouldblock_and_file_end_is_zero() {
        let body = data(16 << 20);
        let file = temp_file(&body);
        let (mut socket, _client) = tcp_pair();
        let mut sent = 0;
        let err = loop {
            match socket.sendfile(&file, sent as u64, body.len() - sent) {
                Ok(n) => {
                    assert!(n > 0);
                    sent += n;
                    assert!(sent < body.len(), "16 MiB fit into an unread socket");
                }
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(socket.sendfile(&file, body.len() as u64, 10).unwrap(), 0);
        assert_eq!(
            socket.sendfile(&file, body.len() as u64 + 5, 10).unwrap(),
            0
        );
    }
}
