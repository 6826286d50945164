//! Command-line configuration: the `Config` the server runs with, parsed
//! from argv with getopts, and the usage text. Pure (no I/O beyond resolving
//! bind host names), so it is unit-tested directly.
//!
//! Flag names and meanings follow gunicorn wherever gunicorn has the flag,
//! so that existing deployment scripts and habits carry over.

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::http::forwarded::{self, TrustedProxies};
use crate::http::parse::Limits;
use crate::logging::access_log;

/// One address to listen on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindAddr {
    /// `HOST:PORT`, `[IPv6]:PORT` (port 0 = any free port).
    Tcp(SocketAddr),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `fd://N`: an inherited, already listening socket.
    Fd(i32),
}

/// Where `--access-logfile` sends the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// `-`
    Stdout,
    File(PathBuf),
}

/// Which callable to serve: `module:callable`, `module` (callable
/// `application`) or `module:factory()` (called once at start, its result
/// is the app).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub module: String,
    /// Dotted attribute path inside the module (`app`, `wsgi.application`).
    pub callable: String,
    pub factory: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub binds: Vec<BindAddr>,
    pub app: AppSpec,
    pub chdir: Option<PathBuf>,
    pub pythonpath: Vec<PathBuf>,
    pub virtualenv: Option<PathBuf>,
    pub backlog: i32,
    /// Idle time allowed between requests on a keep-alive connection;
    /// zero disables keep-alive.
    pub keep_alive: Duration,
    pub limits: Limits,
    /// Largest request body in bytes (413 beyond).
    pub limit_request_body: u64,
    pub graceful_timeout: Duration,
    /// From the first byte of a request head to its end (408 beyond).
    pub header_timeout: Duration,
    /// Longest stall while receiving a body (408) or sending a response
    /// (the connection is dropped).
    pub socket_timeout: Duration,
    /// Connections served at once; past it, accepting pauses.
    pub max_connections: usize,
    pub log_level: log::LevelFilter,
    /// Worker processes; more than one runs a master that supervises them.
    pub workers: usize,
    /// Import the app once in the master, before forking.
    pub preload: bool,
    /// Each worker listens on its own SO_REUSEPORT socket (TCP only).
    pub reuse_port: bool,
    /// Requests a worker serves before it is replaced; 0 = never.
    pub max_requests: u64,
    /// Up to this many requests are added at random to `max_requests`, so
    /// workers do not all restart at once.
    pub max_requests_jitter: u64,
    /// A worker silent for longer (stuck in the app) is killed and
    /// replaced; zero disables the check. Needs a master.
    pub timeout: Duration,
    /// `--timeout` was given: the user asked for supervision, so even one
    /// worker gets a master.
    pub timeout_given: bool,
    /// Where to write the (master's) process id; removed at exit.
    pub pidfile: Option<PathBuf>,
    /// Restart workers when the app's Python files change (development).
    pub reload: bool,
    /// The process umask, set before binding (unix socket permissions).
    pub umask: Option<u32>,
    /// `--error-logfile`; `None` is stderr.
    pub error_logfile: Option<PathBuf>,
    /// `--access-logfile`; `None`: no access log.
    pub access_logfile: Option<AccessLogTarget>,
    /// `--access-logformat`, already checked by `access_log::Format::parse`.
    pub access_logformat: String,
    /// `--forwarded-allow-ips`: peers whose X-Forwarded-* headers count.
    pub forwarded_allow_ips: TrustedProxies,
    /// `--forwarded-hops`: how many X-Forwarded-For entries back, through
    /// trusted proxies, the client may be (1: the trusted peer's own).
    pub forwarded_hops: u8,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `-h/--help`: print this text to stdout, exit 0.
    Help(String),
    /// `-V/--version`: print this line to stdout, exit 0.
    Version(String),
}

/// A command-line error: one line for stderr. Exit status 2 for misuse of
/// the options; 1 for an APP that cannot name a Python callable (the same
/// status as an APP that names a missing one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String, pub ErrorKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Usage,
    BadApp,
}

impl UsageError {
    pub fn exit_code(&self) -> u8 {
        match self.1 {
            ErrorKind::Usage => 2,
            ErrorKind::BadApp => 1,
        }
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Port used when `--bind` names a host without one (as gunicorn does).
pub(crate) const DEFAULT_PORT: u16 = 8000;
pub(crate) const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);
/// mio's own default (128) drops connections under a burst of clients.
pub(crate) const DEFAULT_BACKLOG: i32 = 2048;
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_LIMIT_REQUEST_BODY: u64 = 1 << 30;
pub(crate) const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
/// A slowloris client trickling a head gets this long in all.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// gunicorn's worker timeout is 30 s; stalls are judged on the same scale.
pub(crate) const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// Enough for 10,000 idle keep-alive clients with room for new ones.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// gunicorn's worker timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// More workers than this is a typo, not a deployment (also the most
/// TTIN may reach).
pub(crate) const MAX_WORKERS: usize = 1024;
/// Upper bound for the second-valued flags: far beyond any sensible value,
/// and small enough that `Instant + Duration` can never overflow (a panic)
/// in the server's timers.
pub(crate) const MAX_SECONDS: u64 = 86_400;

impl Config {
    /// The configuration the command line gives when only APP is named.
    /// Also the starting point for callers that do not parse argv (tests,
    /// an embedding Python module).
    pub fn new(app: AppSpec) -> Config {
        Config {
            binds: vec![BindAddr::Tcp(DEFAULT_BIND)],
            app,
            chdir: None,
            pythonpath: Vec::new(),
            virtualenv: None,
            backlog: DEFAULT_BACKLOG,
            keep_alive: DEFAULT_KEEP_ALIVE,
            limits: Limits::default(),
            limit_request_body: DEFAULT_LIMIT_REQUEST_BODY,
            graceful_timeout: DEFAULT_GRACEFUL_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            socket_timeout: DEFAULT_SOCKET_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            log_level: log::LevelFilter::Info,
            workers: 1,
            preload: false,
            reuse_port: false,
            max_requests: 0,
            max_requests_jitter: 0,
            timeout: DEFAULT_TIMEOUT,
            timeout_given: false,
            pidfile: None,
            reload: false,
            umask: None,
            error_logfile: None,
            access_logfile: None,
            access_logformat: access_log::DEFAULT_FORMAT.to_string(),
            forwarded_allow_ips: TrustedProxies::default(),
            forwarded_hops: forwarded::DEFAULT_HOPS,
        }
    }

    /// Whether a master process supervises workers. With one worker and
    /// nothing to supervise, the server is a single process (no fork).
    pub fn uses_master(&self) -> bool {
        self.workers > 1
            || self.max_requests > 0
            || self.reload
            || (self.timeout_given && !self.timeout.is_zero())
    }
}

const PROG: &str = "rwsgi-lite";

/// Every option, once, as (short, long, value placeholder or "" for a
/// flag): getopts is built from this table and the tests check it against
/// the usage text, the README and the man page, so the four cannot drift
/// apart.
const OPTIONS: &[(&str, &str, &str)] = &[
    ("b", "bind", "ADDR"),
    ("", "chdir", "DIR"),
    ("", "pythonpath", "DIRS"),
    ("", "virtualenv", "DIR"),
    ("", "backlog", "N"),
    ("", "keep-alive", "SECONDS"),
    ("", "limit-request-line", "BYTES"),
    ("", "limit-request-fields", "N"),
    ("", "limit-request-field-size", "BYTES"),
    ("", "limit-request-body", "BYTES"),
    ("", "graceful-timeout", "SECONDS"),
    ("", "header-timeout", "SECONDS"),
    ("", "socket-timeout", "SECONDS"),
    ("", "max-connections", "N"),
    ("", "log-level", "LEVEL"),
    ("w", "workers", "N"),
    ("", "preload", ""),
    ("", "reuse-port", ""),
    ("", "max-requests", "N"),
    ("", "max-requests-jitter", "N"),
    ("t", "timeout", "SECONDS"),
    ("p", "pid", "PATH"),
    ("", "reload", ""),
    ("m", "umask", "MASK"),
    ("", "error-logfile", "PATH"),
    ("", "access-logfile", "PATH"),
    ("", "access-logformat", "FORMAT"),
    ("", "forwarded-allow-ips", "LIST"),
    ("", "forwarded-hops", "N"),
    ("h", "help", ""),
    ("V", "version", ""),
];

/// Every long option and whether it takes a value: what an embedding
/// front end (the Python package's keyword arguments) maps onto the
/// command line.
pub fn long_options() -> impl Iterator<Item = (&'static str, bool)> {
    OPTIONS
        .iter()
        .map(|&(_, long, hint)| (long, !hint.is_empty()))
}

const USAGE: &str = "\
Usage: rwsgi-lite [OPTIONS] APP

Serve the WSGI (PEP 3333) application APP over HTTP/1.1.

APP is MODULE:CALLABLE (e.g. myapp:app, pkg.wsgi:obj.app), MODULE alone
(the callable is 'application'), or MODULE:FACTORY() (called once at start;
its result is the app). It is imported with the current directory (after
--chdir) first on sys.path.

Options (defaults in brackets):
  -b, --bind ADDR        listen on HOST:PORT, [IPv6]:PORT, HOST (port 8000),
                         unix:PATH or fd://N; repeatable [127.0.0.1:8000];
                         systemd socket activation (LISTEN_FDS) replaces it
      --chdir DIR        change to DIR before loading APP
      --pythonpath DIRS  comma-separated directories to put first on sys.path
      --virtualenv DIR   use this virtualenv's packages [$VIRTUAL_ENV]
                         (standalone binary; the package serves in its own)
      --backlog N        pending-connection queue length, 1-65535 [2048]
  -m, --umask MASK       process umask, set before binding (unix socket
                         permissions), e.g. 007
  -p, --pid PATH         write the process id to PATH; removed at exit
      --keep-alive SECONDS
                         idle time allowed between requests; 0 disables [5]
      --limit-request-line BYTES
                         longest request line; 0 = unlimited [8190]
      --limit-request-fields N
                         most header fields; 0 = unlimited [100]
      --limit-request-field-size BYTES
                         longest header field; 0 = unlimited [8190]
      --limit-request-body BYTES
                         largest request body; K, M, G suffixes (powers of
                         1024) allowed; 0 = unlimited [1G]
      --graceful-timeout SECONDS
                         time in-flight responses get after SIGTERM [30]
      --header-timeout SECONDS
                         time a request head may take to arrive, from its
                         first byte (408 beyond) [10]
      --socket-timeout SECONDS
                         longest stall receiving a body (408) or sending a
                         response (dropped) [30]
      --max-connections N
                         connections served at once per worker; past it,
                         accepting pauses [16384]
      --log-level LEVEL  debug, info, warning, error or critical [info]
      --error-logfile PATH
                         error log file, wsgi.errors too; - for stderr [-]
      --access-logfile PATH
                         access log file; - for stdout [off]
      --access-logformat FORMAT
                         access log line, %(atom)s as gunicorn [combined]
      --forwarded-allow-ips LIST
                         trusted proxies (IPs, networks, *; unix sockets
                         always) for X-Forwarded-For/-Proto [127.0.0.1,::1]
      --forwarded-hops N
                         X-Forwarded-For entries read from the right: 1 is
                         the address the trusted peer saw; N walks back
                         through up to N-1 more trusted proxies (a client
                         inside the trusted range can then forge that
                         far), 1-64 [1]

Processes (a master supervises the workers when -w is 2 or more, or with
--max-requests, --timeout or --reload; otherwise one process serves):
  -w, --workers N        worker processes [1]
      --preload          import APP once in the master, before forking
      --reuse-port       give each worker its own SO_REUSEPORT socket
      --max-requests N   requests a worker serves before it is replaced;
                         0 = never [0]
      --max-requests-jitter N
                         add 0-N at random to each worker's --max-requests
  -t, --timeout SECONDS  kill and replace a worker stuck in the app for
                         longer; 0 disables [30]
      --reload           restart workers when Python files under the
                         current directory or --pythonpath change (development)

  -h, --help             print this help and exit
  -V, --version          print the version and exit

Signals: TERM graceful stop; INT, QUIT quick stop (a second INT exits at
once); with a master also HUP reload workers, TTIN/TTOU one worker more or
less; USR1 reopen log files.
Exit status: 0 ok, 1 startup or runtime error, 2 usage error.
";

/// Parses `args` (without argv[0]). `virtual_env` is `$VIRTUAL_ENV`, used
/// when `--virtualenv` is not given.
pub fn parse_args(args: &[String], virtual_env: Option<String>) -> Result<Command, UsageError> {
    let mut opts = getopts::Options::new();
    for &(short, long, hint) in OPTIONS {
        // Everything is "multi" so that a repeated option means "last one
        // wins" (gunicorn/argparse behaviour) instead of a getopts error;
        // --bind and --pythonpath accumulate instead.
        if hint.is_empty() {
            opts.optflagmulti(short, long, "");
        } else {
            opts.optmulti(short, long, "", hint);
        }
    }
    let m = opts.parse(args).map_err(getopts_error)?;

    // --help and --version answer even when the rest of the line is wrong:
    // that is when people reach for them.
    if m.opt_present("help") {
        return Ok(Command::Help(usage()));
    }
    if m.opt_present("version") {
        return Ok(Command::Version(format!(
            "{PROG} {}",
            env!("CARGO_PKG_VERSION")
        )));
    }

    let app = match m.free.as_slice() {
        [app] => parse_app(app)?,
        [] => return Err(err("missing APP (e.g. rwsgi-lite myapp:app); see --help")),
        [_, extra, ..] => {
            return Err(err(format_args!(
                "unexpected argument {} (only one APP may be given); see --help",
                quote(extra)
            )))
        }
    };
    let mut c = Config::new(app);
    let last = |name: &str| m.opt_strs(name).pop();

    let binds = m.opt_strs("bind");
    if !binds.is_empty() {
        c.binds.clear();
        for b in &binds {
            let addr = parse_bind(b)?;
            // Binding the same address twice would fail with "address in
            // use" against ourselves; port 0 is exempt since each such bind
            // gets its own port.
            let any_port = matches!(addr, BindAddr::Tcp(a) if a.port() == 0);
            if any_port || !c.binds.contains(&addr) {
                c.binds.push(addr);
            }
        }
    }
    if let Some(v) = last("chdir") {
        c.chdir = Some(parse_dir("chdir", &v)?);
    }
    for v in m.opt_strs("pythonpath") {
        let before = c.pythonpath.len();
        // gunicorn trims around the commas; a directory name that starts or
        // ends with a space is not worth the surprise of the opposite.
        c.pythonpath.extend(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
        if c.pythonpath.len() == before {
            return Err(bad_value(
                "pythonpath",
                &v,
                "a comma-separated list of directories",
            ));
        }
    }
    c.virtualenv = match last("virtualenv") {
        Some(v) => Some(parse_dir("virtualenv", &v)?),
        None => virtual_env.filter(|v| !v.is_empty()).map(PathBuf::from),
    };
    if let Some(v) = last("backlog") {
        let n = parse_uint("backlog", &v, 1, 65535, "an integer 1-65535")?;
        c.backlog = i32::try_from(n).map_err(|_| bad_value("backlog", &v, "an integer 1-65535"))?;
    }
    if let Some(v) = last("keep-alive") {
        c.keep_alive = parse_seconds("keep-alive", &v)?;
    }
    if let Some(v) = last("limit-request-line") {
        c.limits.request_line = parse_limit("limit-request-line", &v)?;
    }
    if let Some(v) = last("limit-request-fields") {
        c.limits.fields = parse_limit("limit-request-fields", &v)?;
    }
    if let Some(v) = last("limit-request-field-size") {
        c.limits.field_size = parse_limit("limit-request-field-size", &v)?;
    }
    if let Some(v) = last("limit-request-body") {
        // 0 means unlimited like the other limits; storing u64::MAX keeps
        // the field a plain "largest body" that the server compares against
        // without a special case.
        c.limit_request_body = match parse_size("limit-request-body", &v)? {
            0 => u64::MAX,
            n => n,
        };
    }
    if let Some(v) = last("graceful-timeout") {
        c.graceful_timeout = parse_seconds("graceful-timeout", &v)?;
    }
    if let Some(v) = last("header-timeout") {
        c.header_timeout = parse_positive_seconds("header-timeout", &v)?;
    }
    if let Some(v) = last("socket-timeout") {
        c.socket_timeout = parse_positive_seconds("socket-timeout", &v)?;
    }
    if let Some(v) = last("max-connections") {
        let n = parse_uint("max-connections", &v, 1, 1 << 20, "an integer 1-1048576")?;
        c.max_connections = n as usize;
    }
    if let Some(v) = last("log-level") {
        c.log_level = parse_log_level(&v)?;
    }
    if let Some(v) = last("workers") {
        let n = parse_uint("workers", &v, 1, MAX_WORKERS as u64, "an integer 1-1024")?;
        c.workers = n as usize;
    }
    c.preload = m.opt_present("preload");
    c.reuse_port = m.opt_present("reuse-port");
    c.reload = m.opt_present("reload");
    if let Some(v) = last("max-requests") {
        c.max_requests = parse_uint("max-requests", &v, 0, u64::MAX / 2, "an integer; 0 = never")?;
    }
    if let Some(v) = last("max-requests-jitter") {
        c.max_requests_jitter = parse_uint(
            "max-requests-jitter",
            &v,
            0,
            u64::MAX / 2,
            "a non-negative integer",
        )?;
    }
    if let Some(v) = last("timeout") {
        c.timeout = parse_seconds("timeout", &v)?;
        c.timeout_given = true;
    }
    if let Some(v) = last("pid") {
        if v.is_empty() {
            return Err(bad_value("pid", &v, "a file path"));
        }
        c.pidfile = Some(PathBuf::from(v));
    }
    if let Some(v) = last("umask") {
        c.umask = Some(parse_umask(&v)?);
    }
    if c.reuse_port && c.binds.iter().any(|b| !matches!(b, BindAddr::Tcp(_))) {
        return Err(err(
            "--reuse-port applies to TCP addresses only, not unix: or fd:// binds",
        ));
    }
    if let Some(v) = last("error-logfile") {
        c.error_logfile = parse_log_path("error-logfile", &v)?;
    }
    if let Some(v) = last("access-logfile") {
        c.access_logfile = Some(match parse_log_path("access-logfile", &v)? {
            None => AccessLogTarget::Stdout,
            Some(path) => AccessLogTarget::File(path),
        });
    }
    if let Some(v) = last("access-logformat") {
        if let Err(e) = access_log::Format::parse(&v) {
            return Err(invalid("access-logformat", &v, e));
        }
        c.access_logformat = v;
    }
    if let Some(v) = last("forwarded-allow-ips") {
        c.forwarded_allow_ips =
            TrustedProxies::parse(&v).map_err(|e| invalid("forwarded-allow-ips", &v, e))?;
    }
    if let Some(v) = last("forwarded-hops") {
        let max = forwarded::MAX_HOPS;
        let n = parse_uint("forwarded-hops", &v, 1, max.into(), "an integer 1-64")?;
        c.forwarded_hops = n as u8;
    }
    Ok(Command::Run(Box::new(c)))
}

/// The `--help` text.
pub fn usage() -> String {
    USAGE.to_string()
}

fn err(msg: impl Display) -> UsageError {
    UsageError(format!("{PROG}: {msg}"), ErrorKind::Usage)
}

fn bad_value(opt: &str, value: &str, expected: &str) -> UsageError {
    err(format_args!(
        "--{opt}: invalid value {} (expected {expected})",
        quote(value)
    ))
}

/// Like `bad_value`, for values whose parser says what is wrong.
fn invalid(opt: &str, value: &str, why: impl Display) -> UsageError {
    err(format_args!(
        "--{opt}: invalid value {} ({why})",
        quote(value)
    ))
}

fn getopts_error(f: getopts::Fail) -> UsageError {
    use getopts::Fail;
    // getopts reports option names without dashes; one letter is a short
    // option (it also maps `--x` to `-x`).
    let dashed = |name: &str| {
        if name.chars().count() == 1 {
            format!("-{name}")
        } else {
            format!("--{name}")
        }
    };
    match f {
        Fail::UnrecognizedOption(n) => err(format_args!(
            "unrecognized option {}; see --help",
            quote(&dashed(&n))
        )),
        Fail::ArgumentMissing(n) => err(format_args!(
            "option {} requires a value; see --help",
            quote(&dashed(&n))
        )),
        Fail::UnexpectedArgument(n) => err(format_args!(
            "option {} takes no value; see --help",
            quote(&dashed(&n))
        )),
        // Not reachable with the table above (no required options, every
        // option may repeat); kept readable all the same.
        Fail::OptionMissing(n) => err(format_args!("missing option {}", quote(&dashed(&n)))),
        Fail::OptionDuplicated(n) => err(format_args!(
            "option {} given more than once",
            quote(&dashed(&n))
        )),
    }
}

/// Quotes user input for a one-line message: control characters (a newline
/// would break the line) are escaped and very long input is cut short.
fn quote(s: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::with_capacity(s.len().min(MAX) + 5);
    out.push('\'');
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Decimal digits only: `str::parse` would also take a leading `+`, and
/// anything else (sign, space, hex) is a typo worth reporting.
fn parse_uint(opt: &str, v: &str, min: u64, max: u64, expected: &str) -> Result<u64, UsageError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_value(opt, v, expected));
    }
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad_value(opt, v, expected)),
    }
}

fn parse_seconds(opt: &str, v: &str) -> Result<Duration, UsageError> {
    let n = parse_uint(opt, v, 0, MAX_SECONDS, "whole seconds 0-86400")?;
    Ok(Duration::from_secs(n))
}

/// A timeout that cannot be switched off: 0 would answer every request 408.
fn parse_positive_seconds(opt: &str, v: &str) -> Result<Duration, UsageError> {
    let n = parse_uint(opt, v, 1, MAX_SECONDS, "whole seconds 1-86400")?;
    Ok(Duration::from_secs(n))
}

fn parse_limit(opt: &str, v: &str) -> Result<usize, UsageError> {
    const EXPECTED: &str = "a non-negative integer; 0 = unlimited";
    let n = parse_uint(opt, v, 0, u64::MAX, EXPECTED)?;
    usize::try_from(n).map_err(|_| bad_value(opt, v, EXPECTED))
}

/// A byte count with an optional binary suffix: `512K`, `10M`, `1G`.
fn parse_size(opt: &str, v: &str) -> Result<u64, UsageError> {
    const EXPECTED: &str = "bytes, e.g. 1048576 or 1M; 0 = unlimited";
    let (digits, shift) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 10),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 20),
        Some(b'g' | b'G') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n =
        parse_uint(opt, digits, 0, u64::MAX, EXPECTED).map_err(|_| bad_value(opt, v, EXPECTED))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| bad_value(opt, v, EXPECTED))
}

fn parse_dir(opt: &str, v: &str) -> Result<PathBuf, UsageError> {
    if v.is_empty() {
        return Err(bad_value(opt, v, "a directory"));
    }
    Ok(PathBuf::from(v))
}

/// gunicorn's `auto_int`: `0o22`, `022` (a leading zero means octal),
/// `0x12` or decimal.
fn parse_umask(v: &str) -> Result<u32, UsageError> {
    const EXPECTED: &str = "an octal mask such as 022 or 0o077";
    let bad = || bad_value("umask", v, EXPECTED);
    let lower = v.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0o") {
        (d, 8)
    } else if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    match u32::from_str_radix(digits, radix) {
        Ok(n) if n <= 0o777 => Ok(n),
        _ => Err(bad()),
    }
}

/// A file path, or `-` (`None`) for the standard stream.
fn parse_log_path(opt: &str, v: &str) -> Result<Option<PathBuf>, UsageError> {
    match v {
        "" => Err(bad_value(opt, v, "a file path, or - for the console")),
        "-" => Ok(None),
        _ => Ok(Some(PathBuf::from(v))),
    }
}

fn parse_log_level(v: &str) -> Result<log::LevelFilter, UsageError> {
    use log::LevelFilter;
    Ok(match v.to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::Trace,
        "debug" => LevelFilter::Debug,
        "info" => LevelFilter::Info,
        "warning" | "warn" => LevelFilter::Warn,
        // The log crate has no level above error; gunicorn's "critical"
        // only ever narrows output, so error is the closest match.
        "error" | "critical" => LevelFilter::Error,
        "off" => LevelFilter::Off,
        _ => {
            return Err(bad_value(
                "log-level",
                v,
                "debug, info, warning, error or critical",
            ))
        }
    })
}

/// `HOST:PORT`, `[IPv6]:PORT`, a bare `HOST` or IPv6 literal (port 8000),
/// `unix:PATH` (also gunicorn's `unix://PATH`).
pub(crate) fn parse_bind(value: &str) -> Result<BindAddr, UsageError> {
    let bad = |why: &str| {
        err(format_args!(
            "--bind: invalid address {} ({why})",
            quote(value)
        ))
    };
    if let Some(path) = value.strip_prefix("unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(bad("empty socket path"));
        }
        return Ok(BindAddr::Unix(PathBuf::from(path)));
    }
    if let Some(n) = value.strip_prefix("fd://") {
        // 0-2 are stdio, never a listening socket handed to us.
        return match n.parse::<i32>() {
            Ok(fd) if fd >= 3 && n.bytes().all(|b| b.is_ascii_digit()) => Ok(BindAddr::Fd(fd)),
            _ => Err(bad(
                "expected fd://N with a file descriptor number of 3 or more",
            )),
        };
    }
    if value.is_empty() {
        return Err(bad("expected HOST:PORT, [IPv6]:PORT or unix:PATH"));
    }
    if let Some(rest) = value.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| bad("not an IPv6 address inside [ ]"))?;
        let port = match after {
            "" => DEFAULT_PORT,
            _ => {
                let p = after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("expected ':PORT' after ']'"))?;
                parse_port(p).ok_or_else(|| bad("expected a port 0-65535"))?
            }
        };
        return Ok(BindAddr::Tcp(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    // Without brackets the last colon of an IPv6 address cannot be told
    // from a port separator, so a bare IPv6 literal is the whole address.
    if let Ok(ip) = value.parse::<Ipv6Addr>() {
        return Ok(BindAddr::Tcp(SocketAddr::new(IpAddr::V6(ip), DEFAULT_PORT)));
    }
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) => (
            h,
            parse_port(p).ok_or_else(|| bad("expected a port 0-65535"))?,
        ),
        None => (value, DEFAULT_PORT),
    };
    if host.is_empty() {
        // gunicorn would bind every interface here; make that explicit.
        return Err(bad("empty host; use 0.0.0.0 for all interfaces"));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(BindAddr::Tcp(SocketAddr::new(IpAddr::V4(ip), port)));
    }
    if host.contains(':') {
        return Err(bad("put an IPv6 address in brackets: [ADDR]:PORT"));
    }
    // Reject what cannot be a host name before asking the resolver, which
    // may be slow to say no.
    let name_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !name_ok {
        return Err(bad("not a host name or IP address"));
    }
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(err(format_args!(
                "--bind: cannot resolve {}: {e}",
                quote(host)
            )))
        }
    };
    // Prefer IPv4 as gunicorn does (it binds a name with an AF_INET
    // socket): `localhost` then means 127.0.0.1 whatever the resolver's
    // order, which is what most clients and proxies try first.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| BindAddr::Tcp(*a))
        .ok_or_else(|| err(format_args!("--bind: {} has no address", quote(host))))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// `module:callable`, `module` or `module:factory()`.
pub(crate) fn parse_app(spec: &str) -> Result<AppSpec, UsageError> {
    let bad = |why: &str| {
        let UsageError(msg, _) = err(format_args!(
            "invalid APP {} ({why}); see --help",
            quote(spec)
        ));
        UsageError(msg, ErrorKind::BadApp)
    };
    let (module, callable) = match spec.split_once(':') {
        Some((m, c)) => (m, Some(c)),
        None => (spec, None),
    };
    if module.contains('/') || module.contains('\\') {
        return Err(bad(
            "a module name, not a path: use --chdir or --pythonpath for directories",
        ));
    }
    if !is_dotted_name(module) {
        return Err(bad("expected MODULE:CALLABLE, MODULE or MODULE:FACTORY()"));
    }
    let (callable, factory) = match callable {
        None => ("application", false),
        Some(c) => match c.split_once('(') {
            None => (c, false),
            Some((_, "")) => return Err(bad("missing ')'")),
            Some((name, ")")) => (name, true),
            Some(_) => return Err(bad("a factory is called without arguments: FACTORY()")),
        },
    };
    if callable.is_empty() {
        return Err(bad("empty callable name after ':'"));
    }
    if !is_dotted_name(callable) {
        return Err(bad("expected MODULE:CALLABLE, MODULE or MODULE:FACTORY()"));
    }
    Ok(AppSpec {
        module: module.to_string(),
        callable: callable.to_string(),
        factory,
    })
}

/// Python identifiers joined by dots. Approximate (Python's import reports
/// the fine points); it only has to catch typos and paths early.
fn is_dotted_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut cs = part.chars();
            matches!(cs.next(), Some(c) if c == '_' || c.is_alphabetic())
                && cs.all(|c| c == '_' || c.is_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn run(a: &[&str]) -> Config {
        match parse_args(&args(a), None) {
            Ok(Command::Run(c)) => *c,
            other => panic!("{a:?}: expected Run, got {other:?}"),
        }
    }

    fn fail(a: &[&str]) -> String {
        match parse_args(&args(a), None) {
            Err(UsageError(msg, _)) => {
                assert!(msg.starts_with("rwsgi-lite: "), "{msg}");
                assert!(!msg.contains('\n'), "not one line: {msg:?}");
                msg
            }
            other => panic!("{a:?}: expected a usage error, got {other:?}"),
        }
    }

    fn tcp(s: &str) -> BindAddr {
        BindAddr::Tcp(s.parse().expect("test address"))
    }

    fn spec(module: &str, callable: &str, factory: bool) -> AppSpec {
        AppSpec {
            module: module.into(),
            callable: callable.into(),
            factory,
        }
    }

    #[test]
    fn defaults() {
        let c = run(&["myapp:app"]);
        assert_eq!(c.binds, vec![tcp("127.0.0.1:8000")]);
        assert_eq!(c.app, spec("myapp", "app", false));
        assert_eq!(c.chdir, None);
        assert!(c.pythonpath.is_empty());
        assert_eq!(c.virtualenv, None);
        assert_eq!(c.backlog, 2048);
        assert_eq!(c.keep_alive, Duration::from_secs(5));
        assert_eq!(
            c.limits,
            Limits {
                request_line: 8190,
                fields: 100,
                field_size: 8190
            }
        );
        assert_eq!(c.limit_request_body, 1024 * 1024 * 1024);
        assert_eq!(c.graceful_timeout, Duration::from_secs(30));
        assert_eq!(c.log_level, log::LevelFilter::Info);
        assert_eq!(c.error_logfile, None);
        assert_eq!(c.access_logfile, None);
        assert_eq!(c.access_logformat, access_log::DEFAULT_FORMAT);
        assert_eq!(c.forwarded_allow_ips, TrustedProxies::default());
        assert_eq!(c.forwarded_hops, 1);
    }

    #[test]
    fn every_option() {
        let c = run(&[
            "-b",
            "0.0.0.0:9000",
            "--bind=[::1]:9001",
            "--bind",
            "unix:/run/app.sock",
            "--chdir",
            "/srv/app",
            "--pythonpath",
            "lib, vendor,,",
            "--pythonpath=extra",
            "--virtualenv",
            "/srv/venv",
            "--backlog",
            "65535",
            "--keep-alive",
            "0",
            "--limit-request-line",
            "0",
            "--limit-request-fields",
            "32768",
            "--limit-request-field-size",
            "16384",
            "--limit-request-body",
            "10M",
            "--graceful-timeout",
            "3",
            "--log-level",
            "DEBUG",
            "--error-logfile",
            "/var/log/err.log",
            "--access-logfile=-",
            "--access-logformat",
            "%(h)s %(s)s",
            "--forwarded-allow-ips",
            "10.0.0.0/8",
            "--forwarded-hops",
            "3",
            "pkg.wsgi:application",
        ]);
        assert_eq!(
            c.binds,
            vec![
                tcp("0.0.0.0:9000"),
                tcp("[::1]:9001"),
                BindAddr::Unix("/run/app.sock".into())
            ]
        );
        assert_eq!(c.app, spec("pkg.wsgi", "application", false));
        assert_eq!(c.chdir, Some("/srv/app".into()));
        assert_eq!(
            c.pythonpath,
            vec![
                PathBuf::from("lib"),
                PathBuf::from("vendor"),
                PathBuf::from("extra")
            ]
        );
        assert_eq!(c.virtualenv, Some("/srv/venv".into()));
        assert_eq!(c.backlog, 65535);
        assert_eq!(c.keep_alive, Duration::ZERO);
        assert_eq!(
            c.limits,
            Limits {
                request_line: 0,
                fields: 32768,
                field_size: 16384
            }
        );
        assert_eq!(c.limit_request_body, 10 << 20);
        assert_eq!(c.graceful_timeout, Duration::from_secs(3));
        assert_eq!(c.log_level, log::LevelFilter::Debug);
        assert_eq!(c.error_logfile, Some("/var/log/err.log".into()));
        assert_eq!(c.access_logfile, Some(AccessLogTarget::Stdout));
        assert_eq!(c.access_logformat, "%(h)s %(s)s");
        assert_eq!(
            c.forwarded_allow_ips,
            TrustedProxies::parse("10.0.0.0/8").unwrap()
        );
        assert_eq!(c.forwarded_hops, 3);
    }

    #[test]
    fn options_may_follow_app_and_last_one_wins() {
        let c = run(&["app", "--backlog", "10", "--backlog=20", "-b", "1.2.3.4:5"]);
        assert_eq!(c.backlog, 20);
        assert_eq!(c.binds, vec![tcp("1.2.3.4:5")]);
        assert_eq!(c.app, spec("app", "application", false));
    }

    #[test]
    fn short_bind_forms() {
        assert_eq!(run(&["-b127.0.0.1:1", "a"]).binds, vec![tcp("127.0.0.1:1")]);
        assert_eq!(
            run(&["-b", "10.0.0.1", "a"]).binds,
            vec![tcp("10.0.0.1:8000")]
        );
    }

    #[test]
    fn help_and_version() {
        for a in [
            &["-h"][..],
            &["--help"],
            &["--help", "app"],
            &["-h", "--backlog", "x"],
        ] {
            match parse_args(&args(a), None) {
                Ok(Command::Help(t)) => assert_eq!(t, usage()),
                other => panic!("{a:?}: {other:?}"),
            }
        }
        for a in [&["-V"][..], &["--version"], &["--version", "a", "b"]] {
            match parse_args(&args(a), None) {
                Ok(Command::Version(v)) => {
                    assert_eq!(v, format!("rwsgi-lite {}", env!("CARGO_PKG_VERSION")))
                }
                other => panic!("{a:?}: {other:?}"),
            }
        }
        // Help wins over version, whatever the order.
        assert!(matches!(
            parse_args(&args(&["-V", "-h"]), None),
            Ok(Command::Help(_))
        ));
    }

    #[test]
    fn app_positional_count() {
        assert_eq!(
            fail(&[]),
            "rwsgi-lite: missing APP (e.g. rwsgi-lite myapp:app); see --help"
        );
        assert_eq!(fail(&["--backlog", "5"]), fail(&[]));
        let m = fail(&["a:app", "b:app"]);
        assert!(m.contains("'b:app'") && m.contains("only one APP"), "{m}");
        // "--" ends options; what follows is positional.
        assert!(fail(&["a", "--", "--bind"]).contains("'--bind'"));
        assert_eq!(run(&["--", "a:b"]).app, spec("a", "b", false));
    }

    #[test]
    fn app_spec_forms() {
        assert_eq!(parse_app("hello:app"), Ok(spec("hello", "app", false)));
        assert_eq!(parse_app("hello"), Ok(spec("hello", "application", false)));
        assert_eq!(
            parse_app("pkg.mod:obj.attr"),
            Ok(spec("pkg.mod", "obj.attr", false))
        );
        assert_eq!(
            parse_app("pkg.mod:create_app()"),
            Ok(spec("pkg.mod", "create_app", true))
        );
        assert_eq!(parse_app("_m2:_f()"), Ok(spec("_m2", "_f", true)));
        assert_eq!(parse_app("café:app"), Ok(spec("café", "app", false)));
    }

    #[test]
    fn app_spec_errors() {
        for bad in [
            "",
            ":app",
            "mod:",
            "mod:()",
            "mod:f(",
            "mod:f(1)",
            "mod:f()x",
            "mod:f() ",
            "mod:a..b",
            "mod:.a",
            "a:b:c",
            "1mod:app",
            "mod.:app",
            "my-app:app",
            " mod:app",
            "examples/hello:app",
        ] {
            let m = parse_app(bad).expect_err(bad).0;
            assert!(m.starts_with("rwsgi-lite: invalid APP '"), "{m}");
            assert!(!m.contains('\n'));
        }
        assert!(parse_app("f:g(1)")
            .unwrap_err()
            .0
            .contains("without arguments"));
        assert!(parse_app("a/b:app").unwrap_err().0.contains("--chdir"));
        assert!(fail(&["mod:f(x)"]).contains("invalid APP 'mod:f(x)'"));
    }

    #[test]
    fn bind_tcp() {
        assert_eq!(parse_bind("127.0.0.1:8000"), Ok(tcp("127.0.0.1:8000")));
        assert_eq!(parse_bind("0.0.0.0:0"), Ok(tcp("0.0.0.0:0")));
        assert_eq!(parse_bind("1.2.3.4:65535"), Ok(tcp("1.2.3.4:65535")));
        assert_eq!(parse_bind("1.2.3.4"), Ok(tcp("1.2.3.4:8000")));
    }

    #[test]
    fn bind_ipv6() {
        assert_eq!(parse_bind("[::1]:8080"), Ok(tcp("[::1]:8080")));
        assert_eq!(parse_bind("[::]:0"), Ok(tcp("[::]:0")));
        assert_eq!(parse_bind("[2001:db8::1]"), Ok(tcp("[2001:db8::1]:8000")));
        assert_eq!(parse_bind("::1"), Ok(tcp("[::1]:8000")));
        assert_eq!(parse_bind("::"), Ok(tcp("[::]:8000")));
    }

    #[test]
    fn bind_unix() {
        assert_eq!(
            parse_bind("unix:/tmp/a.sock"),
            Ok(BindAddr::Unix("/tmp/a.sock".into()))
        );
        assert_eq!(
            parse_bind("unix:rel.sock"),
            Ok(BindAddr::Unix("rel.sock".into()))
        );
        assert_eq!(
            parse_bind("unix:///tmp/b.sock"),
            Ok(BindAddr::Unix("/tmp/b.sock".into()))
        );
        assert!(parse_bind("unix:").is_err());
        assert!(parse_bind("unix://").is_err());
    }

    #[test]
    fn bind_host_name() {
        // localhost comes from /etc/hosts, so this needs no network.
        match parse_bind("localhost:0") {
            Ok(BindAddr::Tcp(a)) => {
                assert!(a.ip().is_loopback(), "{a}");
                assert_eq!(a.port(), 0);
            }
            other => panic!("{other:?}"),
        }
        match parse_bind("localhost") {
            Ok(BindAddr::Tcp(a)) => assert_eq!(a.port(), 8000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bind_errors() {
        for bad in [
            "",
            ":8000",
            "127.0.0.1:",
            "127.0.0.1:x",
            "127.0.0.1:-1",
            "127.0.0.1:+80",
            "127.0.0.1:65536",
            "127.0.0.1:99999999999999999999",
            "[::1",
            "[::1]:",
            "[::1]x",
            "[::1]:x",
            "[127.0.0.1]:80",
            "[nothost]:80",
            "1:2:3:80x",
            "bad host:80",
            "bad\nhost:80",
            "fd://",
            "fd://2",
            "fd://-3",
            "fd://+3",
            "fd://x",
        ] {
            let m = parse_bind(bad).expect_err(bad).0;
            assert!(m.starts_with("rwsgi-lite: --bind: "), "{m}");
            assert!(!m.contains('\n'), "{m:?}");
        }
        assert_eq!(
            fail(&["-b", "127.0.0.1:http", "a"]),
            "rwsgi-lite: --bind: invalid address '127.0.0.1:http' (expected a port 0-65535)"
        );
    }

    #[test]
    fn duplicate_binds_collapse_except_port_zero() {
        let c = run(&[
            "-b",
            "127.0.0.1:1",
            "-b",
            "127.0.0.1:1",
            "-b",
            "1.1.1.1:1",
            "a",
        ]);
        assert_eq!(c.binds, vec![tcp("127.0.0.1:1"), tcp("1.1.1.1:1")]);
        let c = run(&["-b", "127.0.0.1:0", "-b", "127.0.0.1:0", "a"]);
        assert_eq!(c.binds.len(), 2);
    }

    #[test]
    fn virtualenv_fallback_and_override() {
        let venv = |a: &[&str], env: Option<&str>| match parse_args(&args(a), env.map(String::from))
        {
            Ok(Command::Run(c)) => c.virtualenv,
            other => panic!("{other:?}"),
        };
        assert_eq!(venv(&["a"], None), None);
        assert_eq!(venv(&["a"], Some("")), None);
        assert_eq!(venv(&["a"], Some("/env")), Some("/env".into()));
        assert_eq!(
            venv(&["--virtualenv", "/flag", "a"], Some("/env")),
            Some("/flag".into())
        );
        assert_eq!(
            venv(&["--virtualenv", "/flag", "a"], None),
            Some("/flag".into())
        );
        assert!(fail(&["--virtualenv", "", "a"]).contains("--virtualenv: invalid value ''"));
    }

    #[test]
    fn dirs() {
        assert!(fail(&["--chdir", "", "a"]).contains("--chdir"));
        assert!(fail(&["--pythonpath", " , ", "a"]).contains("--pythonpath"));
        assert!(fail(&["--pythonpath", "", "a"]).contains("--pythonpath"));
        let c = run(&[
            "--chdir",
            "a b",
            "--pythonpath",
            "x,y",
            "--pythonpath",
            "z",
            "m",
        ]);
        assert_eq!(c.chdir, Some("a b".into()));
        assert_eq!(
            c.pythonpath,
            vec![PathBuf::from("x"), "y".into(), "z".into()]
        );
    }

    #[test]
    fn backlog() {
        assert_eq!(run(&["--backlog", "1", "a"]).backlog, 1);
        assert_eq!(
            fail(&["--backlog", "abc", "a"]),
            "rwsgi-lite: --backlog: invalid value 'abc' (expected an integer 1-65535)"
        );
        for bad in [
            "0",
            "65536",
            "-1",
            "+5",
            " 5",
            "5 ",
            "",
            "1e3",
            "0x10",
            "99999999999999999999999",
        ] {
            assert!(
                fail(&["--backlog", bad, "a"]).contains("(expected an integer 1-65535)"),
                "{bad}"
            );
        }
    }

    #[test]
    fn seconds() {
        let c = run(&["--keep-alive", "86400", "--graceful-timeout", "0", "a"]);
        assert_eq!(c.keep_alive, Duration::from_secs(86400));
        assert_eq!(c.graceful_timeout, Duration::ZERO);
        for opt in ["--keep-alive", "--graceful-timeout"] {
            for bad in ["-1", "1.5", "86401", "5s", "", "18446744073709551616"] {
                let m = fail(&[opt, bad, "a"]);
                assert!(m.contains(&format!("{opt}: invalid value")), "{m}");
                assert!(m.ends_with("(expected whole seconds 0-86400)"), "{m}");
            }
        }
    }

    #[test]
    fn header_limits() {
        let c = run(&[
            "--limit-request-line",
            "4094",
            "--limit-request-fields",
            "0",
            "--limit-request-field-size",
            "0",
            "a",
        ]);
        assert_eq!(
            c.limits,
            Limits {
                request_line: 4094,
                fields: 0,
                field_size: 0
            }
        );
        for opt in [
            "--limit-request-line",
            "--limit-request-fields",
            "--limit-request-field-size",
        ] {
            for bad in ["-1", "x", "", "1K", "18446744073709551616"] {
                let m = fail(&[opt, bad, "a"]);
                assert!(m.contains(&format!("{opt}: invalid value")), "{m}");
            }
        }
    }

    #[test]
    fn body_limit() {
        let body = |v: &str| run(&["--limit-request-body", v, "a"]).limit_request_body;
        assert_eq!(body("1234"), 1234);
        assert_eq!(body("1k"), 1024);
        assert_eq!(body("512K"), 512 * 1024);
        assert_eq!(body("10m"), 10 << 20);
        assert_eq!(body("2G"), 2 << 30);
        assert_eq!(body("0"), u64::MAX);
        assert_eq!(body("0K"), u64::MAX);
        for bad in [
            "",
            "K",
            "-1",
            "1.5M",
            "1T",
            "1KB",
            "1 K",
            "+1",
            "17179869184G",
        ] {
            let m = fail(&["--limit-request-body", bad, "a"]);
            assert!(m.contains("--limit-request-body: invalid value"), "{m}");
        }
    }

    #[test]
    fn log_levels() {
        use log::LevelFilter as L;
        for (v, want) in [
            ("debug", L::Debug),
            ("info", L::Info),
            ("warning", L::Warn),
            ("error", L::Error),
            ("critical", L::Error),
            ("Warning", L::Warn),
            ("CRITICAL", L::Error),
            ("warn", L::Warn),
            ("trace", L::Trace),
            ("off", L::Off),
        ] {
            assert_eq!(run(&["--log-level", v, "a"]).log_level, want, "{v}");
        }
        assert_eq!(
            fail(&["--log-level", "loud", "a"]),
            "rwsgi-lite: --log-level: invalid value 'loud' \
             (expected debug, info, warning, error or critical)"
        );
    }

    #[test]
    fn log_files() {
        let c = run(&[
            "--error-logfile",
            "-",
            "--access-logfile",
            "logs/a.log",
            "a",
        ]);
        assert_eq!(c.error_logfile, None);
        assert_eq!(
            c.access_logfile,
            Some(AccessLogTarget::File("logs/a.log".into()))
        );
        // Last one wins, `-` included.
        let c = run(&["--error-logfile", "e.log", "--error-logfile", "-", "a"]);
        assert_eq!(c.error_logfile, None);
        let c = run(&["--access-logfile", "x", "--access-logfile", "-", "a"]);
        assert_eq!(c.access_logfile, Some(AccessLogTarget::Stdout));
        for opt in ["--error-logfile", "--access-logfile"] {
            assert_eq!(
                fail(&[opt, "", "a"]),
                format!(
                    "rwsgi-lite: {opt}: invalid value '' \
                     (expected a file path, or - for the console)"
                )
            );
        }
    }

    #[test]
    fn access_logformat() {
        let c = run(&["--access-logformat", "%(h)s %%(x)s %(nope)s", "a"]);
        assert_eq!(c.access_logformat, "%(h)s %%(x)s %(nope)s");
        // Empty is allowed (gunicorn allows it too).
        assert_eq!(run(&["--access-logformat", "", "a"]).access_logformat, "");
        assert_eq!(
            fail(&["--access-logformat", "%(h)s %(t", "a"]),
            "rwsgi-lite: --access-logformat: invalid value '%(h)s %(t' \
             ('%(' at offset 6 has no closing ')')"
        );
        let m = fail(&["--access-logformat", "%(s)d", "a"]);
        assert!(m.contains("must end in 's'"), "{m}");
    }

    #[test]
    fn forwarded_allow_ips() {
        let t = |v: &str| run(&["--forwarded-allow-ips", v, "a"]).forwarded_allow_ips;
        assert_eq!(t("*"), TrustedProxies::All);
        assert_eq!(t(""), TrustedProxies::Nets(vec![]));
        assert!(t("10.0.0.0/8, 2001:db8::/32").trusts("10.9.8.7".parse().unwrap()));
        assert!(!t("10.0.0.0/8").trusts("127.0.0.1".parse().unwrap()));
        assert_eq!(
            fail(&["--forwarded-allow-ips", "10.0.0.1,bogus", "a"]),
            "rwsgi-lite: --forwarded-allow-ips: invalid value '10.0.0.1,bogus' \
             (\"bogus\" is not an IP address or network)"
        );
        let m = fail(&["--forwarded-allow-ips", "10.0.0.0/40", "a"]);
        assert!(m.contains("invalid prefix length"), "{m}");
        let m = fail(&["--forwarded-allow-ips", "1.2.3.4\n5", "a"]);
        assert!(!m.contains('\n'), "{m:?}");
    }

    #[test]
    fn forwarded_hops() {
        let h = |v: &str| run(&["--forwarded-hops", v, "a"]).forwarded_hops;
        assert_eq!(h("1"), 1);
        assert_eq!(h("2"), 2);
        assert_eq!(h("64"), forwarded::MAX_HOPS);
        for bad in ["0", "65", "256", "-1", "+2", "", "two", "1.5"] {
            assert_eq!(
                fail(&["--forwarded-hops", bad, "a"]),
                format!(
                    "rwsgi-lite: --forwarded-hops: invalid value {} (expected an integer 1-64)",
                    quote(bad)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn getopts_errors() {
        assert_eq!(
            fail(&["--foo", "a"]),
            "rwsgi-lite: unrecognized option '--foo'; see --help"
        );
        assert_eq!(
            fail(&["--foo=1", "a"]),
            "rwsgi-lite: unrecognized option '--foo'; see --help"
        );
        assert_eq!(
            fail(&["-x", "a"]),
            "rwsgi-lite: unrecognized option '-x'; see --help"
        );
        assert_eq!(
            fail(&["a", "--bind"]),
            "rwsgi-lite: option '--bind' requires a value; see --help"
        );
        assert_eq!(
            fail(&["a", "-b"]),
            "rwsgi-lite: option '-b' requires a value; see --help"
        );
        assert_eq!(
            fail(&["--help=yes"]),
            "rwsgi-lite: option '--help' takes no value; see --help"
        );
        // A negative number is taken as the value, then rejected as such.
        assert!(fail(&["--backlog", "-5", "a"]).contains("invalid value '-5'"));
    }

    #[test]
    fn messages_quote_safely() {
        let m = fail(&["--backlog", "1\n2", "a"]);
        assert!(m.contains("'1\\n2'"), "{m}");
        let long = "9".repeat(500);
        let m = fail(&["--backlog", &long, "a"]);
        assert!(m.len() < 200 && m.contains("...'"), "{m}");
    }

    #[test]
    fn usage_text() {
        let u = usage();
        assert!(u.starts_with("Usage: rwsgi-lite [OPTIONS] APP\n"));
        assert!(u.lines().count() <= 90, "{} lines", u.lines().count());
        assert!(u.lines().all(|l| l.len() <= 80), "a line is wider than 80");
        for &(short, long, hint) in OPTIONS {
            let want = format!("--{long} {hint}");
            assert!(u.contains(want.trim_end()), "usage lacks {want}");
            if !short.is_empty() {
                assert!(u.contains(&format!("-{short}, --{long}")));
            }
        }
        // ...and mentions no option that does not exist.
        for word in u.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if let Some(name) = word.strip_prefix("--").filter(|n| !n.is_empty()) {
                assert!(OPTIONS.iter().any(|o| o.1 == name), "stray --{name}");
            }
        }
        for default in [
            "[127.0.0.1:8000]",
            "[2048]",
            "[5]",
            "[8190]",
            "[100]",
            "[1G]",
            "[30]",
            "[info]",
        ] {
            assert!(u.contains(default), "usage lacks {default}");
        }
    }

    /// The README and the man page list the same options as --help.
    #[test]
    fn docs_list_every_option() {
        let read = |p: &str| {
            std::fs::read_to_string(format!("{}/{p}", env!("CARGO_MANIFEST_DIR")))
                .unwrap_or_else(|e| panic!("{p}: {e}"))
        };
        let readme = read("README.md");
        let man = read("man/rwsgi-lite.1");
        for &(_, long, hint) in OPTIONS {
            // roff needs `\-` for a hyphen that must stay an ASCII '-'.
            let roff_long = long.replace('-', "\\-");
            let (md, roff) = if hint.is_empty() {
                (format!("`--{long}`"), format!("\\-\\-{roff_long}"))
            } else {
                (
                    format!("`--{long} {hint}`"),
                    format!("\\-\\-{roff_long} \\fI{hint}\\fR"),
                )
            };
            assert!(readme.contains(&md), "README.md lacks {md}");
            assert!(man.contains(&roff), "man page lacks {roff}");
        }
        let th = format!("\"rwsgi-lite {}\"", env!("CARGO_PKG_VERSION"));
        assert!(man.contains(&th), "man page .TH lacks {th}");
    }

    #[test]
    fn which_settings_run_a_master() {
        assert!(!run(&["a"]).uses_master());
        assert!(!run(&["-w", "1", "a"]).uses_master());
        assert!(run(&["-w", "2", "a"]).uses_master());
        assert!(run(&["--max-requests", "5", "a"]).uses_master());
        assert!(run(&["--reload", "a"]).uses_master());
        assert!(run(&["--timeout", "60", "a"]).uses_master());
        assert!(!run(&["--timeout", "0", "a"]).uses_master());
        assert!(!run(&["--max-requests", "0", "a"]).uses_master());
    }

    #[test]
    fn process_options() {
        let c = run(&[
            "-w3",
            "--preload",
            "--reuse-port",
            "--max-requests",
            "100",
            "--max-requests-jitter",
            "7",
            "-t",
            "9",
            "-p",
            "/run/x.pid",
            "-m",
            "007",
            "a",
        ]);
        assert_eq!(c.workers, 3);
        assert!(c.preload && c.reuse_port && !c.reload);
        assert_eq!((c.max_requests, c.max_requests_jitter), (100, 7));
        assert_eq!(c.timeout, Duration::from_secs(9));
        assert_eq!(c.pidfile, Some(PathBuf::from("/run/x.pid")));
        assert_eq!(c.umask, Some(0o007));
        for (mask, want) in [
            ("0o22", 0o22),
            ("022", 0o22),
            ("18", 18),
            ("0x12", 0x12),
            ("0", 0),
        ] {
            assert_eq!(run(&["--umask", mask, "a"]).umask, Some(want), "{mask}");
        }
        for bad in ["", "0o8", "1000", "0o1000", "-1", "x"] {
            fail(&["--umask", bad, "a"]);
        }
        for bad in ["0", "1025", "x", "-1"] {
            fail(&["-w", bad, "a"]);
        }
        fail(&["--reuse-port", "-b", "unix:/tmp/s", "a"]);
        fail(&["--pid", "", "a"]);
        assert_eq!(run(&["-b", "fd://3", "a"]).binds, vec![BindAddr::Fd(3)]);
    }

    #[test]
    fn config_new_matches_parsed_defaults() {
        let c = Config::new(spec("m", "app", false));
        let p = run(&["m:app"]);
        assert_eq!(format!("{c:?}"), format!("{p:?}"));
    }
}
