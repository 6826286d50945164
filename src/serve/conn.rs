//! One client connection as a state machine: read a head, read the whole
//! body, call the app, pull its response while the socket drains, then
//! either start on the next (possibly pipelined) request or close.
//!
//! It knows neither mio nor Python: it is driven through [`Conn::drive`]
//! over any [`Stream`] and any [`App`], so short writes, WouldBlock at byte
//! N and broken pipes are unit tests with a mock stream. Every path that
//! input can reach ends in a response or a close, never a panic.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::http::body::{self, BodyDecoder, RequestInfo};
use crate::http::encode::BodyEncoder;
use crate::http::parse::{HeadParser, Status, Version};
use crate::http::response::{self, ResponseHead};
use crate::http::HttpError;
use crate::serve::app::{
    App, AppFailure, ConnSettings, Event, FileBody, Local, Peer, Request, Response,
};
use crate::serve::inbuf::InBuf;
use crate::serve::outbuf::OutQueue;
use crate::serve::spool::{RequestBody, Spool, SPOOL_THRESHOLD};

/// A byte stream that can also half-close (send FIN but keep reading).
pub trait Stream: Read + Write {
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Switches Nagle's algorithm off (true) or on. Only TCP has it.
    fn set_nodelay(&mut self, _nodelay: bool) -> io::Result<()> {
        Ok(())
    }

    /// Writes up to `len` bytes of `file` starting at `offset` (the file's
    /// own position is neither used nor moved) and returns how many the
    /// stream took; `Ok(0)` means the file ends at `offset`. Blocks like
    /// `write`: `WouldBlock` when the stream is full.
    ///
    /// The default reads one block and writes it, for streams the kernel
    /// cannot feed from a file directly (and for mock streams); sockets
    /// override it with sendfile(2).
    fn sendfile(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        copy_file_block(self, file, offset, len)
    }
}

/// Block size of the copying fallback of [`Stream::sendfile`]: on the stack,
/// so a file of any size costs no memory.
const FILE_COPY_BLOCK: usize = 32 * 1024;

/// One step of [`Stream::sendfile`] through user space: `pread` a block,
/// then one `write` of it. A block the stream did not take is read again
/// next time, which keeps this stateless.
///
/// Never inlined: its 32 KiB block would otherwise land in the frame of
/// `Conn::drive`, whose every call would then probe eight stack pages.
#[inline(never)]
pub(crate) fn copy_file_block<W: Write + ?Sized>(
    out: &mut W,
    file: &File,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut block = [0u8; FILE_COPY_BLOCK];
    let want = len.min(block.len());
    let n = loop {
        match file.read_at(&mut block[..want], offset) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if n == 0 {
        return Ok(0);
    }
    match out.write(&block[..n])? {
        // Ok(0) here would read as "the file ended".
        0 => Err(io::ErrorKind::WriteZero.into()),
        written => Ok(written),
    }
}

/// What the server should do with the connection after `drive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the socket (readable or writable) or a deadline.
    Open,
    /// Work is left that needs no readiness event (the app's iterable has
    /// more): drive it again after other connections had their turn.
    Yield,
    /// Done: deregister and drop it.
    Closed,
    /// Responses are queued and the connection waits for its next request;
    /// call [`Conn::flush_deferred`] before the loop sleeps. The server
    /// writes every such connection back to back once it has run all the
    /// requests that were ready: spacing the writes by the app's run time
    /// would wake the clients one by one (on loopback and in VMs a wake-up
    /// is an expensive IPI); written together, a client wakes once for many
    /// responses.
    Flush,
    /// Like `Flush`, but the response goes on (the app's iterable has
    /// more): once the output has left, drive the connection again as for
    /// `Yield`.
    FlushThenResume,
}

/// Everything the server shares with every connection on each wake-up.
pub struct Ctx<'a> {
    pub now: Instant,
    /// Today's IMF-fixdate for the Date header.
    pub date: &'a [u8],
    /// The server is shutting down: finish the current response, keep no
    /// connection alive.
    pub draining: bool,
}

/// Free space wanted before a read. The buffer is not grown (and so not
/// re-zeroed) while this much is free: a typical head fits many times.
const READ_SPARE: usize = 2 * 1024;
const INITIAL_INBUF: usize = 4 * 1024;
/// Free space wanted before reading body bytes: large reads, few syscalls.
/// The buffer shrinks back once the connection is idle again.
const BODY_READ_SPARE: usize = 64 * 1024;
/// After a protocol error we half-close and read what the client still
/// sends for this long, so our error response is not lost to a TCP reset
/// triggered by unread input.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX_DISCARD: usize = 256 * 1024;
/// A connection accepted just before a drain began gets this long for its
/// first request: over a network the request trails the handshake by up
/// to a round trip, and a reloading worker must not drop it unanswered.
const DRAIN_FRESH_GRACE: Duration = Duration::from_secs(1);

struct Active<R> {
    response: R,
    /// The body's encoder, from writing the head: until then, `None`.
    framing: Option<BodyEncoder>,
    /// The request allows another one after it (the head may still refuse).
    keep_alive: bool,
    head_request: bool,
    version: Version,
    /// Non-empty body items sent so far.
    items: u32,
    /// Nagle was switched on for the rest of this body (see `Event::Data`).
    nagle: bool,
    /// A file body being sent; nothing more is pulled until it is done.
    file: Option<FilePart>,
    /// A flush before pulling was already left to the end of a turn: once
    /// per response is what batches the writes of typical (one-item)
    /// responses; a long stream flushes its later items at once and keeps
    /// pulling within its budget.
    deferred: bool,
}

/// The unsent rest of an [`Event::File`].
struct FilePart {
    file: File,
    offset: u64,
    left: u64,
    sent: u64,
    /// Framing bytes that follow the last byte (a chunk's CRLF).
    after: &'static [u8],
}

/// How sending (part of) a file body ended.
enum FileSend {
    Done,
    /// The socket is full: wait until it is writable.
    Blocked,
    /// This `drive`'s share is spent: let the others have a turn.
    Budget,
    /// The file ended before its length: it shrank after it was measured.
    Short,
    Failed(io::Error),
}

enum State<R> {
    /// Waiting for (the rest of) a head; `since` is when its first byte came.
    Head {
        since: Option<Instant>,
    },
    Body {
        head_len: usize,
        info: RequestInfo,
        body: Spool,
        decoder: BodyDecoder,
    },
    // Inline, not boxed: a box was one malloc and free per request, and
    // the slab's slots are few enough for the larger size not to matter.
    Respond(Active<R>),
    /// Flush what is queued, then half-close and linger.
    Closing,
    Linger {
        until: Instant,
        discarded: usize,
    },
    Closed,
}

/// File body bytes sent per `drive`: a fast client must not keep the loop
/// on one large file while others wait.
const FILE_BUDGET: u64 = 4 * 1024 * 1024;
/// Most bytes asked of one `sendfile` call (Linux moves at most ~2 GiB).
const SENDFILE_MAX: u64 = 1 << 30;

/// Application pulls (calls into the app's iterable) per `drive`: one
/// connection streaming a slow generator must not starve the others, the
/// signal handlers or the timers.
const PULL_BUDGET: u32 = 16;
/// The same, in time since this `drive` first pulled. Counted per drive,
/// not from the loop's wake-up: otherwise, once a busy wake-up passed it,
/// every later connection (and every one in the ready queue) would yield
/// before its first pull and make no progress at all that turn. The event
/// loop gives a whole wake-up the same budget before it polls again.
pub(crate) const TIME_BUDGET: Duration = Duration::from_millis(20);

/// How one step of the state machine ended.
enum Step {
    /// The pull budget is spent: flush, then come back later.
    Yield,
    /// State changed; run the loop again.
    Continue,
    /// Needs the socket: flush output if any, else wait for readiness.
    Blocked,
    /// Like `Blocked`, at the point where the connection waits for its
    /// next request: output may be left for a deferred flush.
    Idle,
    /// Output must leave before the app runs again (a streaming body): it
    /// leaves at the end of the turn, and the connection resumes after that.
    FlushFirst,
    /// Drop the connection now.
    Close,
}

pub struct Conn<S, R: Response> {
    stream: S,
    peer: Peer,
    local: Rc<Local>,
    settings: Rc<ConnSettings>,
    inbuf: InBuf,
    parser: HeadParser,
    state: State<R>,
    out: OutQueue<R::Chunk>,
    /// When the idle keep-alive period ends (no request bytes yet).
    idle_until: Option<Instant>,
    /// Pulls left in the current `drive`.
    budget: u32,
    /// When the current `drive` first pulled from a response that was not
    /// ready (read lazily: a one-item body never needs the clock).
    pulls_since: Option<Instant>,
    /// File body bytes left to send in the current `drive`.
    file_budget: u64,
    /// When a byte last moved in either direction: stalls are measured
    /// from here.
    last_io: Instant,
    /// A read in this `drive` returned less than it asked for, so the
    /// socket was empty: another read now would only say WouldBlock.
    /// Edge-triggered readiness reports any byte that arrives later.
    drained: bool,
    /// The peer has half-closed (the event said so): always read on, to
    /// see the end of stream.
    peer_closed: bool,
    /// No response finished yet: the client has just connected, and its
    /// first request is served even when a drain begins first.
    fresh: bool,
}

impl<S: Stream, R: Response> Conn<S, R> {
    pub fn new(
        stream: S,
        peer: Peer,
        local: Rc<Local>,
        settings: Rc<ConnSettings>,
        now: Instant,
    ) -> Self {
        let parser = HeadParser::new(settings.limits);
        let idle_until = Some(now + settings.header_timeout.max(settings.keep_alive));
        Conn {
            stream,
            peer,
            local,
            settings,
            inbuf: InBuf::with_capacity(INITIAL_INBUF),
            parser,
            state: State::Head { since: None },
            out: OutQueue::new(),
            idle_until,
            budget: PULL_BUDGET,
            pulls_since: None,
            file_budget: FILE_BUDGET,
            last_io: now,
            drained: false,
            peer_closed: false,
            fresh: true,
        }
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The readiness event said the peer half-closed its side.
    pub(crate) fn on_peer_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Output is waiting for the socket to become writable.
    pub(crate) fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.sending_file()
    }

    /// A file body is part-way out (the output queue may be empty).
    fn sending_file(&self) -> bool {
        matches!(&self.state, State::Respond(active) if active.file.is_some())
    }

    /// True while no request is in progress: nothing to lose by closing.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::Head { since: None }) && self.out.is_empty()
    }

    /// Advances the connection as far as the socket allows.
    pub fn drive<A: App<Response = R>>(&mut self, app: &mut A, ctx: &Ctx<'_>) -> Progress {
        self.budget = PULL_BUDGET;
        self.pulls_since = None;
        self.file_budget = FILE_BUDGET;
        self.drained = false;
        loop {
            let step = match self.state {
                State::Head { .. } => self.step_head(app, ctx),
                State::Body { .. } => self.step_body(app, ctx),
                State::Respond(_) => self.step_respond(ctx),
                State::Closing => {
                    if self.out.is_empty() {
                        let _ = self.stream.shutdown_write();
                        self.state = State::Linger {
                            until: ctx.now + LINGER,
                            discarded: 0,
                        };
                        Step::Continue
                    } else {
                        Step::Blocked
                    }
                }
                State::Linger { .. } => self.step_linger(),
                State::Closed => Step::Close,
            };
            match step {
                Step::Continue => continue,
                Step::Close => {
                    self.abort();
                    return Progress::Closed;
                }
                Step::Yield => {
                    return match self.flush(ctx) {
                        Ok(true) => Progress::Yield,
                        // The writable event resumes us.
                        Ok(false) => Progress::Open,
                        Err(e) => {
                            log::debug!("write to {} failed: {e}", self.peer);
                            self.abort();
                            Progress::Closed
                        }
                    };
                }
                Step::Idle if !self.out.is_empty() => return Progress::Flush,
                Step::FlushFirst => return Progress::FlushThenResume,
                Step::Blocked | Step::Idle => {
                    if self.out.is_empty() {
                        return Progress::Open;
                    }
                    match self.flush(ctx) {
                        Ok(true) => continue,
                        Ok(false) => return Progress::Open,
                        Err(e) => {
                            log::debug!("write to {} failed: {e}", self.peer);
                            self.abort();
                            return Progress::Closed;
                        }
                    }
                }
            }
        }
    }

    /// Writes the output a `Progress::Flush` or `FlushThenResume` left
    /// queued. `Yield` when all of it left and the response goes on (drive
    /// again); `Open` when it waits for input or, with output left, for
    /// the socket to drain (the writable event drives it on).
    pub fn flush_deferred(&mut self, ctx: &Ctx<'_>) -> Progress {
        match self.flush(ctx) {
            Ok(true) if matches!(self.state, State::Respond(_)) => Progress::Yield,
            Ok(_) => Progress::Open,
            Err(e) => {
                log::debug!("write to {} failed: {e}", self.peer);
                self.abort();
                Progress::Closed
            }
        }
    }

    /// Writes queued output, noting progress for the stall timeout.
    fn flush(&mut self, ctx: &Ctx<'_>) -> io::Result<bool> {
        let before = self.out.len();
        let result = self.out.write_to(&mut self.stream);
        if self.out.len() != before {
            self.last_io = ctx.now;
        }
        result
    }

    /// The next instant at which `on_timeout` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let stall = self.last_io + self.settings.socket_timeout;
        match self.state {
            State::Linger { until, .. } => Some(until),
            // Output the client is not reading, whatever else goes on.
            _ if !self.out.is_empty() || self.sending_file() => Some(stall),
            State::Head { since: None } => self.idle_until,
            // From the head's first byte: a trickle does not extend it.
            State::Head { since: Some(t) } => Some(t + self.settings.header_timeout),
            State::Body { .. } => Some(stall),
            _ => None,
        }
    }

    /// Applies an expired deadline: an idle keep-alive connection closes
    /// quietly; a head or body that does not arrive in time gets 408; a
    /// client that stops reading our output is dropped (the app's iterable
    /// is closed); a lingering close ends.
    pub(crate) fn on_timeout(&mut self, ctx: &Ctx<'_>) -> Progress {
        let Some(deadline) = self.deadline() else {
            return Progress::Open;
        };
        if ctx.now < deadline {
            return Progress::Open;
        }
        match self.state {
            State::Head { since: Some(_) } | State::Body { .. } if self.out.is_empty() => {
                log::info!("{}: request not received in time", self.peer);
                self.fail(HttpError::RequestTimeout, ctx);
                // The 408 gets its own stall period, no more.
                self.last_io = ctx.now;
                Progress::Open
            }
            _ => {
                if (!self.out.is_empty() || self.sending_file())
                    && !matches!(self.state, State::Linger { .. })
                {
                    log::info!("{}: client stopped reading; dropped", self.peer);
                }
                self.abort();
                Progress::Closed
            }
        }
    }

    /// Shutdown begins (`ctx.draining`): a busy connection finishes its
    /// current request and then closes. One between requests is driven
    /// once: a next request already in the socket buffer (its readiness
    /// event may still be pending) is served, with `Connection: close`;
    /// with nothing pending it closes now (see `step_head`). One that was
    /// just accepted waits DRAIN_FRESH_GRACE at most for its first request.
    pub(crate) fn on_drain<A: App<Response = R>>(
        &mut self,
        app: &mut A,
        ctx: &Ctx<'_>,
    ) -> Progress {
        if !self.is_idle() {
            return Progress::Open;
        }
        if self.fresh {
            let grace = ctx.now + DRAIN_FRESH_GRACE;
            self.idle_until = Some(self.idle_until.map_or(grace, |t| t.min(grace)));
            return Progress::Open;
        }
        self.drive(app, ctx)
    }

    fn step_head<A: App<Response = R>>(&mut self, app: &mut A, ctx: &Ctx<'_>) -> Step {
        if !self.inbuf.is_empty() {
            match self.parser.parse(self.inbuf.bytes()) {
                Ok(Status::Complete { head_len }) => return self.on_head(head_len, app, ctx),
                Ok(Status::Partial) => {}
                Err(e) => {
                    self.fail(e, ctx);
                    return Step::Continue;
                }
            }
        }
        // Pipelined requests wait in the kernel while our own output is
        // backed up: that is the client's backpressure.
        if self.out.len() >= self.settings.high_water {
            return Step::Blocked;
        }
        // Draining, a connection between requests closes, but only once a
        // read finds nothing pending: closing with a request unread in the
        // socket buffer makes the kernel reset the connection, and the
        // client loses a request it already sent. A read more at most once
        // per connection and drain: a response sent while draining leaves
        // the connection in `Closing`, not here.
        let closing = ctx.draining && self.inbuf.is_empty() && !self.fresh;
        if self.drained && !closing {
            return Step::Idle;
        }
        match self.inbuf.read_from(&mut self.stream, READ_SPARE) {
            Ok(0) => {
                if !self.inbuf.is_empty() {
                    log::debug!("{} closed mid-head", self.peer);
                }
                self.on_peer_eof()
            }
            Ok(_) => {
                self.last_io = ctx.now;
                self.drained = self.inbuf.last_read_short() && !self.peer_closed;
                if let State::Head {
                    since: since @ None,
                } = &mut self.state
                {
                    *since = Some(ctx.now);
                }
                Step::Continue
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && closing => {
                self.close_between_requests()
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if matches!(self.state, State::Head { since: None }) && self.inbuf.is_empty() {
                    self.inbuf.shrink_if_idle(INITIAL_INBUF);
                }
                Step::Idle
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Continue,
            Err(e) => {
                log::debug!("read from {} failed: {e}", self.peer);
                Step::Close
            }
        }
    }

    fn on_head<A: App<Response = R>>(
        &mut self,
        head_len: usize,
        app: &mut A,
        ctx: &Ctx<'_>,
    ) -> Step {
        let buf = self.inbuf.bytes();
        let checked = body::check_method(self.parser.method().get(buf))
            .and_then(|()| body::analyze(buf, self.parser.version(), self.parser.headers()));
        let info = match checked {
            Ok(info) => info,
            Err(e) => {
                self.fail(e, ctx);
                return Step::Continue;
            }
        };
        let decoder = match BodyDecoder::new(info.framing, self.settings.limit_request_body) {
            Ok(d) if d.is_done() => {
                return self.dispatch(head_len, info, RequestBody::default(), app, ctx);
            }
            Ok(d) => d,
            Err(e) => {
                self.fail(e, ctx);
                return Step::Continue;
            }
        };
        // A client that sent `Expect: 100-continue` waits for our go-ahead
        // before the body; skip it if the body is already arriving.
        if info.expect_continue && self.inbuf.len() == head_len {
            self.out.push_bytes(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut body = Spool::with_buffer(SPOOL_THRESHOLD, app.take_body_buffer());
        if let Some(remaining) = decoder.remaining() {
            body.buffer()
                .reserve(remaining.min(BODY_READ_SPARE as u64) as usize);
        }
        self.state = State::Body {
            head_len,
            info,
            body,
            decoder,
        };
        Step::Continue
    }

    /// Feeds the body bytes at hand to the decoder and the spool; reads
    /// more while the body is not complete.
    fn step_body<A: App<Response = R>>(&mut self, app: &mut A, ctx: &Ctx<'_>) -> Step {
        let State::Body {
            head_len,
            body,
            decoder,
            ..
        } = &mut self.state
        else {
            return Step::Continue;
        };
        let head_len = *head_len;
        // Room wanted for the next read: what is still to come, within
        // bounds. Always asking for BODY_READ_SPARE would grow (and zero)
        // the buffer by 64 KiB for a 4 KiB body, only for it to shrink
        // back when idle, on every request.
        let spare = decoder.remaining().map_or(BODY_READ_SPARE, |remaining| {
            remaining.clamp(READ_SPARE as u64, BODY_READ_SPARE as u64) as usize
        });
        // First consume body bytes that arrived with the head (or since).
        let buffered = self.inbuf.bytes().get(head_len..).unwrap_or_default();
        let decoded = match decoder.decode(buffered, body.buffer()) {
            Ok(d) => d,
            Err(e) => {
                self.fail(e, ctx);
                return Step::Continue;
            }
        };
        self.inbuf.remove(head_len, decoded.consumed);
        if let Err(e) = body.settle() {
            return self.spool_failed(e, ctx);
        }
        if decoded.done {
            return self.on_body(app, ctx);
        }
        self.read_body(spare, ctx)
    }

    /// The whole body is here: hand the request to the app.
    fn on_body<A: App<Response = R>>(&mut self, app: &mut A, ctx: &Ctx<'_>) -> Step {
        let State::Body {
            head_len,
            info,
            body,
            ..
        } = std::mem::replace(&mut self.state, State::Closed)
        else {
            return Step::Close;
        };
        let body = match body.finish() {
            Ok(b) => b,
            Err(e) => return self.spool_failed(e, ctx),
        };
        self.dispatch(head_len, info, body, app, ctx)
    }

    /// Reads more of the body. The bytes go through the input buffer, which
    /// is initialised once: reading straight into the body would mean
    /// zero-filling the read window each time. Bytes past the body stay
    /// there for the next (pipelined) request.
    fn read_body(&mut self, spare: usize, ctx: &Ctx<'_>) -> Step {
        match self.inbuf.read_from(&mut self.stream, spare) {
            Ok(0) => {
                log::debug!("{} closed mid-body", self.peer);
                self.on_peer_eof()
            }
            Ok(_) => {
                self.last_io = ctx.now;
                Step::Continue
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Continue,
            Err(e) => {
                log::debug!("read from {} failed: {e}", self.peer);
                Step::Close
            }
        }
    }

    fn dispatch<A: App<Response = R>>(
        &mut self,
        head_len: usize,
        info: RequestInfo,
        body: RequestBody,
        app: &mut A,
        ctx: &Ctx<'_>,
    ) -> Step {
        let head = self.inbuf.bytes().get(..head_len).unwrap_or_default();
        let version = self.parser.version();
        let method = self.parser.method().get(head);
        let head_request = method == b"HEAD";
        let request = Request {
            head,
            method,
            target: self.parser.target().get(head),
            version,
            headers: self.parser.headers(),
            body,
            peer: &self.peer,
            local: &self.local,
        };
        let result = app.call(request);
        self.inbuf.consume(head_len);
        self.parser.reset();
        let keep_alive = info.keep_alive && !ctx.draining && !self.settings.keep_alive.is_zero();
        match result {
            Ok(response) => {
                self.state = State::Respond(Active {
                    response,
                    framing: None,
                    keep_alive,
                    head_request,
                    version,
                    items: 0,
                    nagle: false,
                    file: None,
                    deferred: false,
                });
            }
            Err(AppFailure) => {
                // The canned 500 carries no `Connection: keep-alive`, which
                // an HTTP/1.0 client would need to reuse the connection.
                let keep_alive = keep_alive && version == Version::Http11;
                self.out.put_with(|out| {
                    response::write_internal_error(ctx.date, keep_alive, head_request, out)
                });
                self.next_request(keep_alive, ctx);
            }
        }
        Step::Continue
    }

    /// One step of a response: send the file body in progress, or pull the
    /// app's next event (once the output is under its high-water mark).
    fn step_respond(&mut self, ctx: &Ctx<'_>) -> Step {
        let State::Respond(active) = &mut self.state else {
            return Step::Continue;
        };
        if self.out.len() >= self.settings.high_water {
            return Step::Blocked;
        }
        if active.file.is_some() {
            return self.step_file(ctx);
        }
        if !active.response.ready() {
            if let Some(step) = self.before_pull() {
                return step;
            }
        }
        self.pull(ctx)
    }

    /// Sends the file body in progress, after what is queued before it.
    fn step_file(&mut self, ctx: &Ctx<'_>) -> Step {
        let State::Respond(active) = &mut self.state else {
            return Step::Continue;
        };
        let Some(part) = &mut active.file else {
            return Step::Continue;
        };
        if !self.out.is_empty() {
            // The head (and any body before the file) goes first.
            return Step::Blocked;
        }
        let before = part.left;
        let result = send_file(&mut self.stream, part, &mut self.file_budget);
        if part.left != before {
            self.last_io = ctx.now;
        }
        match result {
            FileSend::Done => {
                log::debug!("{}: sent {} bytes of a file", self.peer, part.sent);
                self.out.push_bytes(part.after);
                active.file = None;
                Step::Continue
            }
            FileSend::Blocked => Step::Blocked,
            FileSend::Budget => Step::Yield,
            FileSend::Short => {
                log::error!(
                    "a file body ended {} bytes early (truncated while being sent?); closing",
                    part.left
                );
                active.response.close();
                self.state = State::Closing;
                Step::Continue
            }
            FileSend::Failed(e) => {
                log::debug!("sending a file to {} failed: {e}", self.peer);
                Step::Close
            }
        }
    }

    /// Before a pull that may run app code: what is queued goes out first
    /// (left to the end of the turn once per response), and the pull
    /// budgets hold. `None`: pull now.
    fn before_pull(&mut self) -> Option<Step> {
        let State::Respond(active) = &mut self.state else {
            return Some(Step::Continue);
        };
        // Body items gave all of the Content-Length: the client is owed
        // nothing more, and the next pull only ends the iteration (a
        // one-item generator, as Flask returns). It runs now, not after a
        // flush, so the response finishes in this drive and its objects
        // are freed at once: kept until the end of the turn, hundreds of
        // them at high concurrency outlived Python's young-generation
        // collections and made the GC work.
        let complete = active.items > 0 && active.framing.is_some_and(|f| f.is_complete());
        if !self.out.is_empty() && !complete {
            // What we have goes out before the app runs again.
            if active.deferred {
                return Some(Step::Blocked);
            }
            active.deferred = true;
            return Some(Step::FlushFirst);
        }
        let since = *self.pulls_since.get_or_insert_with(Instant::now);
        if self.budget == 0 || since.elapsed() > TIME_BUDGET {
            return Some(Step::Yield);
        }
        self.budget -= 1;
        None
    }

    /// Pulls the app's next event and hands it to its handler.
    fn pull(&mut self, ctx: &Ctx<'_>) -> Step {
        let State::Respond(active) = &mut self.state else {
            return Step::Continue;
        };
        match active.response.next() {
            Ok(Event::Head(head)) => self.on_response_head(head, ctx),
            Ok(Event::Data(chunk)) => self.on_body_data(chunk),
            Ok(Event::File(body)) => self.on_body_file(body),
            Ok(Event::End) => self.on_response_end(ctx),
            Err(AppFailure) => self.on_app_failure(ctx),
        }
    }

    /// The app raised: a 500 while no head is out, else a cut connection.
    fn on_app_failure(&mut self, ctx: &Ctx<'_>) -> Step {
        let State::Respond(active) = &mut self.state else {
            return Step::Continue;
        };
        active.response.close();
        if active.framing.is_some() {
            // Too late for a 500: cut the connection so the client sees a
            // truncated response, not a whole one.
            self.state = State::Closing;
            return Step::Continue;
        }
        let keep_alive = active.keep_alive && !ctx.draining && active.version == Version::Http11;
        let head_request = active.head_request;
        self.out.put_with(|out| {
            response::write_internal_error(ctx.date, keep_alive, head_request, out)
        });
        self.next_request(keep_alive, ctx);
        Step::Continue
    }

    /// Writes the head; its framing comes back as the body's encoder.
    fn on_response_head(&mut self, head: ResponseHead, ctx: &Ctx<'_>) -> Step {
        let State::Respond(active) = &mut self.state else {
            return Step::Continue;
        };
        if active.framing.is_some() {
            log::error!("application produced a second response head");
            active.response.close();
            self.state = State::Closing;
            return Step::Continue;
        }
        let keep_alive = active.keep_alive && !ctx.draining;
        let (head_request, version) = (active.head_request, active.version);
        let framing = self.out.put_with(|out| {
            response::write_head(out, &head, head_request, version, keep_alive, ctx.date)
        });
        active.framing = Some(framing);
        active.response.recycle_head(head);
        Step::Continue
    }

    fn on_body_data(&mut self, chunk: R::Chunk) -> Step {
        let State::Respond(active) = &mut self.state else {
            return Step::Continue;
        };
        active.items += 1;
        // A body of many items (a generator): from the second on, let the
        // kernel merge them into full segments (Nagle) instead of sending
        // one small segment per item; the head and first item went out at
        // once, and the end switches TCP_NODELAY back on, which pushes what
        // is pending, so neither the start nor the end waits for a delayed
        // ACK.
        if active.items == 2 && !active.nagle {
            active.nagle = self.stream.set_nodelay(false).is_ok();
        }
        let Some(framing) = &mut active.framing else {
            return self.body_before_head();
        };
        if let Err(e) = framing.data(chunk, &mut self.out) {
            log::warn!("{e}");
        }
        Step::Continue
    }

    fn on_body_file(&mut self, body: FileBody) -> Step {
        let State::Respond(active) = &mut self.state else {
            return Step::Continue;
        };
        let Some(framing) = &mut active.framing else {
            return self.body_before_head();
        };
        let FileBody { file, offset, len } = body;
        let part = framing.file(len, &mut self.out);
        if part.len > 0 {
            active.file = Some(FilePart {
                file,
                offset,
                left: part.len,
                sent: 0,
                after: part.after,
            });
        }
        Step::Continue
    }

    fn body_before_head(&mut self) -> Step {
        log::error!("application sent body data before its headers");
        if let State::Respond(active) = &mut self.state {
            active.response.close();
        }
        self.state = State::Closing;
        Step::Continue
    }

    fn on_response_end(&mut self, ctx: &Ctx<'_>) -> Step {
        let State::Respond(active) = &mut self.state else {
            return Step::Continue;
        };
        active.response.close();
        if active.nagle {
            active.nagle = false;
            let _ = self.stream.set_nodelay(true);
        }
        let keep_alive = match &mut active.framing {
            None => {
                log::error!("application ended without a response head");
                false
            }
            Some(framing) => {
                if let Err(e) = framing.end(&mut self.out) {
                    log::error!("{e}");
                }
                framing.keep_alive()
            }
        };
        self.next_request(keep_alive, ctx);
        Step::Continue
    }

    /// Draining, and no next request is pending: finish sending what is
    /// queued (a completed response), then go.
    fn close_between_requests(&mut self) -> Step {
        if self.out.is_empty() {
            return Step::Close;
        }
        self.state = State::Closing;
        Step::Continue
    }

    /// After a response: wait for the next request or close.
    fn next_request(&mut self, keep_alive: bool, ctx: &Ctx<'_>) {
        self.fresh = false;
        if keep_alive && !ctx.draining {
            // Bytes of the next request already here (pipelined) start its
            // head clock now; otherwise the idle clock runs.
            let since = (!self.inbuf.is_empty()).then_some(ctx.now);
            self.state = State::Head { since };
            self.idle_until = Some(ctx.now + self.settings.keep_alive);
        } else {
            self.state = State::Closing;
        }
    }

    // Not inlined into `drive`, for the same reason as `copy_file_block`.
    #[inline(never)]
    fn step_linger(&mut self) -> Step {
        let State::Linger { discarded, .. } = &mut self.state else {
            return Step::Continue;
        };
        let mut scratch = [0u8; 4096];
        match self.stream.read(&mut scratch) {
            Ok(0) => Step::Close,
            Ok(n) => {
                *discarded += n;
                if *discarded > LINGER_MAX_DISCARD {
                    Step::Close
                } else {
                    Step::Continue
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Continue,
            Err(_) => Step::Close,
        }
    }

    /// The temporary file for a large body failed (disk full): the request
    /// cannot be served; answer 500 and close.
    fn spool_failed(&mut self, err: io::Error, ctx: &Ctx<'_>) -> Step {
        log::error!("cannot spool a request body to disk: {err}");
        self.out
            .put_with(|out| response::write_internal_error(ctx.date, false, false, out));
        self.state = State::Closing;
        Step::Continue
    }

    /// The client closed its side before a request was complete. Answers
    /// to its earlier pipelined requests may still be queued, and a
    /// half-closed client can still read them: send them, then close.
    fn on_peer_eof(&mut self) -> Step {
        if self.out.is_empty() {
            Step::Close
        } else {
            self.state = State::Closing;
            Step::Continue
        }
    }

    /// Answers a protocol error and closes after it is sent.
    fn fail(&mut self, err: HttpError, ctx: &Ctx<'_>) {
        log::info!("{}: {err}", self.peer);
        if let State::Respond(active) = &mut self.state {
            active.response.close();
        }
        self.out
            .put_with(|out| response::write_error(err, ctx.date, out));
        self.state = State::Closing;
    }

    /// Drops the connection now, releasing the app's response if any.
    fn abort(&mut self) {
        if let State::Respond(active) = &mut self.state {
            active.response.close();
        }
        self.state = State::Closed;
        self.out.clear();
    }
}

impl<S, R: Response> Drop for Conn<S, R> {
    fn drop(&mut self) {
        // `close()` must run exactly once, also when the server drops a
        // connection mid-response (client gone, forced shutdown).
        if let State::Respond(active) = &mut self.state {
            active.response.close();
            self.state = State::Closed;
        }
    }
}

/// Sends file body bytes until the part is done, the socket is full, the
/// file ends early, or this drive's budget is spent.
fn send_file<S: Stream>(stream: &mut S, part: &mut FilePart, budget: &mut u64) -> FileSend {
    loop {
        if part.left == 0 {
            return FileSend::Done;
        }
        if *budget == 0 {
            return FileSend::Budget;
        }
        let want = part.left.min(*budget).min(SENDFILE_MAX) as usize;
        match stream.sendfile(&part.file, part.offset, want) {
            Ok(0) => return FileSend::Short,
            Ok(n) => {
                let n = (n as u64).min(part.left);
                part.offset += n;
                part.left -= n;
                part.sent += n;
                *budget = budget.saturating_sub(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return FileSend::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return FileSend::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests;
