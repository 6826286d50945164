//! The files logs are written to, and the error log itself.
//!
//! [`init`] starts the error log (`log` + `env_logger`, gunicorn-style
//! lines) on stderr or on `--error-logfile`. A [`LogFile`] is a file opened
//! for appending by path and remembered, so that [`reopen`] can open every
//! such file again after logrotate has moved it away (SIGUSR1 in gunicorn
//! and in the usual `postrotate` script). Standard streams are never
//! reopened.
//!
//! No Python and no mio here: the event loop may call `reopen` directly.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use jiff::tz::TimeZone;

use crate::logging::localtime::{self, Clock};

/// Largest write a pipe takes atomically (POSIX guarantees at least 512;
/// Linux gives 4096), and that cannot block once poll reported room.
const PIPE_BUF: usize = 4096;

/// Files [`reopen`] visits. Weak: a file nobody writes to any more is
/// dropped and closed as usual.
static REOPENABLE: Mutex<Vec<Weak<LogFile>>> = Mutex::new(Vec::new());

/// `--error-logfile`'s file once [`init`] opened it (also where the WSGI
/// adapter sends `wsgi.errors`).
static ERROR_LOGFILE: std::sync::OnceLock<Arc<LogFile>> = std::sync::OnceLock::new();

/// The error log's file, when it is not stderr.
pub fn error_logfile() -> Option<Arc<LogFile>> {
    ERROR_LOGFILE.get().cloned()
}

/// A log destination shared by its writers: a file by path, or a copy of
/// stdout/stderr.
#[derive(Debug)]
pub struct LogFile {
    /// Absolute, so a later `--chdir` does not change which file a reopen
    /// finds; `None` for a standard stream.
    path: Option<PathBuf>,
    out: Mutex<Out>,
}

#[derive(Debug)]
struct Out {
    file: File,
    /// A pipe, socket, terminal or other device, which can fill up; a
    /// regular file takes writes at disk speed.
    stream: bool,
}

impl Out {
    fn new(file: File) -> Out {
        let stream = match file.metadata() {
            Ok(m) => {
                let t = m.file_type();
                t.is_fifo() || t.is_socket() || t.is_char_device()
            }
            // Assume the cautious kind.
            Err(_) => true,
        };
        Out { file, stream }
    }
}

/// Locks without panicking: a writer that panicked left whole writes
/// behind or none, so the file is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

impl LogFile {
    /// Opens `path` for appending (created if missing) and registers it
    /// for [`reopen`]. A relative path is taken from the current directory
    /// now, once.
    pub fn open(path: &Path) -> io::Result<Arc<LogFile>> {
        let path = std::path::absolute(path)?;
        let file = open_append(&path)?;
        let log = Arc::new(LogFile {
            path: Some(path),
            out: Mutex::new(Out::new(file)),
        });
        let mut files = lock(&REOPENABLE);
        files.retain(|w| w.strong_count() > 0);
        files.push(Arc::downgrade(&log));
        Ok(log)
    }

    /// Standard output (a duplicate of fd 1, so its writes bypass Rust's
    /// and Python's buffers).
    pub fn stdout() -> io::Result<Arc<LogFile>> {
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Ok(Arc::new(LogFile {
            path: None,
            out: Mutex::new(Out::new(File::from(fd))),
        }))
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes all of `data` (the error log: blocking is acceptable there).
    pub fn write_all(&self, data: &[u8]) -> io::Result<()> {
        lock(&self.out).file.write_all(data)
    }

    /// Writes what can go out now without waiting, in whole lines where
    /// possible, and returns how many bytes of `data` were written.
    ///
    /// A regular file gets everything in one `write` (with O_APPEND, each
    /// write lands whole at the end even with other processes appending).
    /// A pipe or socket gets pieces of at most `PIPE_BUF` bytes cut at line
    /// ends, each only after `poll` said there is room: such a write
    /// neither blocks nor interleaves with another process's lines. A line
    /// longer than that is cut into `PIPE_BUF` pieces (which other
    /// processes' lines may then separate).
    pub fn write_available(&self, data: &[u8]) -> io::Result<usize> {
        let mut out = lock(&self.out);
        if !out.stream {
            out.file.write_all(data)?;
            return Ok(data.len());
        }
        let mut done = 0;
        while done < data.len() {
            if !writable_now(&out.file) {
                break;
            }
            let rest = &data[done..];
            let piece = match rest.len() {
                n if n <= PIPE_BUF => n,
                // A line longer than PIPE_BUF goes out in PIPE_BUF pieces:
                // more could block.
                _ => memchr::memrchr(b'\n', &rest[..PIPE_BUF]).map_or(PIPE_BUF, |nl| nl + 1),
            };
            match out.file.write(&rest[..piece]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    if done > 0 {
                        // Report the bytes that did go; the error comes
                        // back on the next call.
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Opens the path again; on failure the old file is kept and the reason
    /// logged. Does nothing for a standard stream.
    fn reopen(&self) {
        let Some(path) = &self.path else {
            return;
        };
        match open_append(path) {
            Ok(file) => {
                // The old file is closed after the lock is released.
                let old = std::mem::replace(&mut *lock(&self.out), Out::new(file));
                drop(old);
            }
            Err(e) => log::error!(
                "cannot reopen log file {}: {e}; still writing to the old one",
                path.display()
            ),
        }
    }
}

/// True when fd has room for a write now (or is in an error state, which
/// the write will then report).
fn writable_now(file: &File) -> bool {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, initialised pollfd that outlives the
    // call, matching nfds = 1; the fd is open (owned by `file`); a zero
    // timeout never blocks.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    rc > 0
}

/// Reopens every log file written by path (error log, access log), as
/// after logrotate moved them. Cheap, never panics; meant for the event
/// loop's SIGUSR1 handling.
pub fn reopen() {
    let files: Vec<Arc<LogFile>> = {
        let mut files = lock(&REOPENABLE);
        files.retain(|w| w.strong_count() > 0);
        files.iter().filter_map(Weak::upgrade).collect()
    };
    // The registry lock is released: a failure is logged, which may write
    // to one of these files.
    for f in &files {
        f.reopen();
    }
    if !files.is_empty() {
        log::info!("reopened {} log file(s)", files.len());
    }
}

/// env_logger's output when the error log is a file.
struct ErrorLog(Arc<LogFile>);

impl Write for ErrorLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // env_logger hands over one whole record: one write keeps the
        // line in one piece among other processes' lines.
        self.0.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts the error log: `[2026-11-24 19:03:27 +0530] [pid] [LEVEL]
/// message` lines (gunicorn's, in local time) on stderr, or appended to
/// `error_logfile`. RUST_LOG, when set, overrides `level` (and can target
/// modules). Fails if the file cannot be opened or a logger is already
/// installed.
pub fn init(level: log::LevelFilter, error_logfile: Option<&Path>) -> io::Result<()> {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    let zone = localtime::system_zone();
    let log_zone = zone.clone().unwrap_or(TimeZone::UTC);
    builder.format(move |buf, record| {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let t = Clock::at(now, localtime::zone_offset(&log_zone, now));
        // The pid is read per record: forked workers each log their own.
        writeln!(
            buf,
            "[{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}{:02}{:02}] [{}] [{}] {}",
            t.year,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            t.offset_sign,
            t.offset_hours,
            t.offset_minutes,
            std::process::id(),
            level_name(record.level()),
            record.args()
        )
    });
    if let Some(path) = error_logfile {
        let file = LogFile::open(path)?;
        // Set once: a second init fails below anyway (one logger only).
        let _ = ERROR_LOGFILE.set(Arc::clone(&file));
        builder.target(env_logger::Target::Pipe(Box::new(ErrorLog(file))));
    }
    builder.try_init().map_err(io::Error::other)?;
    if let Err(e) = zone {
        log::warn!("local time zone unknown ({e}); log times are in UTC");
    }
    Ok(())
}

/// Python's level names, which gunicorn's lines carry (`WARNING`, not
/// `WARN`), so tools that read its logs read ours.
fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "TRACE",
    }
}

#[cfg(test)]
impl LogFile {
    /// An unregistered LogFile over an open file (a pipe end, in tests).
    pub(crate) fn from_file_for_tests(file: File) -> Arc<LogFile> {
        Arc::new(LogFile {
            path: None,
            out: Mutex::new(Out::new(file)),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    fn scratch(tag: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(tag);
        (dir, path)
    }

    #[test]
    fn appends_and_creates() {
        let (_dir, path) = scratch("a.log");
        std::fs::write(&path, b"old\n").unwrap();
        let f = LogFile::open(&path).unwrap();
        assert_eq!(f.write_available(b"one\n").unwrap(), 4);
        f.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old\none\ntwo\n");

        let (_dir2, fresh) = scratch("sub-missing.log");
        let f = LogFile::open(&fresh).unwrap();
        f.write_all(b"x\n").unwrap();
        assert_eq!(std::fs::read(&fresh).unwrap(), b"x\n");
        assert!(f.path().is_some_and(Path::is_absolute));
    }

    #[test]
    fn open_failure_is_an_error() {
        let (_dir, path) = scratch("no/such/dir/a.log");
        assert!(LogFile::open(&path).is_err());
        let (dir, _) = scratch("x");
        // A directory cannot be opened for writing.
        assert!(LogFile::open(dir.path()).is_err());
    }

    #[test]
    fn reopen_follows_the_path_after_a_rename() {
        let (dir, path) = scratch("access.log");
        let f = LogFile::open(&path).unwrap();
        f.write_all(b"before\n").unwrap();
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        // Until reopened, lines go to the moved file.
        f.write_all(b"moved\n").unwrap();
        reopen();
        f.write_available(b"after\n").unwrap();
        assert_eq!(std::fs::read(&rotated).unwrap(), b"before\nmoved\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"after\n");
    }

    #[test]
    fn failed_reopen_keeps_the_old_file() {
        let (dir, path) = scratch("err.log");
        let f = LogFile::open(&path).unwrap();
        let rotated = dir.path().join("err.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        // Something that cannot be opened for appending now sits at the path.
        std::fs::create_dir(&path).unwrap();
        reopen();
        f.write_all(b"still here\n").unwrap();
        assert_eq!(std::fs::read(&rotated).unwrap(), b"still here\n");
    }

    #[test]
    fn dropped_files_leave_the_registry() {
        let (_dir, path) = scratch("gone.log");
        let f = LogFile::open(&path).unwrap();
        let weak = Arc::downgrade(&f);
        drop(f);
        assert!(weak.upgrade().is_none());
        reopen();
        assert!(lock(&REOPENABLE).iter().all(|w| !w.ptr_eq(&weak)));
    }

    /// (read end, write end); std::io::pipe is newer than our MSRV.
    pub(crate) fn pipe() -> (File, File) {
        use std::os::fd::{FromRawFd, OwnedFd};
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) stores.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        // SAFETY: both descriptors were just created and nothing else owns
        // them.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        (File::from(r), File::from(w))
    }

    #[test]
    fn long_lines_never_block_on_a_full_pipe() {
        let (mut reader, writer) = pipe();
        let f = LogFile::from_file_for_tests(writer);
        let line = [b"z".repeat(3 * PIPE_BUF), b"\n".to_vec()].concat();
        let data = line.repeat(100);
        // Returns (does not block) once the pipe is full.
        let written = f.write_available(&data).unwrap();
        assert!(written > 0 && written < data.len(), "{written}");
        assert_eq!(f.write_available(&data[written..]).unwrap(), 0);
        let mut got = vec![0; written];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, data[..written]);
    }

    #[test]
    fn pipe_writes_stop_when_full_and_keep_lines_whole() {
        let (mut reader, writer) = pipe();
        let f = LogFile::from_file_for_tests(writer);
        assert!(lock(&f.out).stream);
        let line = [b"x".repeat(99), b"\n".to_vec()].concat();
        let data = line.repeat(10_000); // 1 MB, far more than a pipe holds
        let written = f.write_available(&data).unwrap();
        assert!(written > 0 && written < data.len(), "{written}");
        assert_eq!(written % line.len(), 0, "a line was cut: {written}");
        // Nothing more fits; the call returns at once instead of waiting.
        assert_eq!(f.write_available(&data[written..]).unwrap(), 0);
        let mut got = vec![0; written];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, data[..written]);
    }
}
