//! Listening sockets: bound (or inherited through `fd://N` or systemd socket
//! activation) once at start, before the app is imported, and shared by
//! every worker the master forks. No mio here: `server.rs` wraps each
//! socket for its own poll.
//!
//! With `--reuse-port` each worker also listens on a SO_REUSEPORT socket
//! of its own, besides the master's (which is in the same group): the
//! kernel spreads new connections over them all, and the master's socket,
//! which every worker accepts from, keeps those that arrive while no
//! worker is up (at start, while the only worker is replaced) instead of
//! the kernel refusing them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::BindAddr;
use crate::serve::app::Local;

/// A listening socket ready for a poll loop.
pub enum ListenSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Why a listening socket could not be set up.
#[derive(Debug)]
pub struct BindError {
    pub addr: String,
    pub source: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot bind {}: {}", self.addr, self.source)
    }
}

impl std::error::Error for BindError {}

/// One address we serve: its listening socket, shared by every worker.
pub struct Listener {
    socket: Socket,
    local: Local,
    /// `--reuse-port`: each worker binds a listening socket of its own to
    /// the address too, with this backlog.
    reuse_port: Option<i32>,
}

impl Listener {
    pub fn local(&self) -> &Local {
        &self.local
    }

    /// The listening sockets of one worker (or the single process): a
    /// duplicate of the shared one, and with `--reuse-port` its own
    /// SO_REUSEPORT socket.
    pub fn for_worker(&self) -> io::Result<Vec<ListenSocket>> {
        let mut sockets = vec![self.socket.try_clone()?];
        if let (Some(backlog), Local::Tcp(addr)) = (self.reuse_port, &self.local) {
            let s = tcp_socket(*addr, true)?;
            s.bind(&(*addr).into())?;
            s.listen(backlog)?;
            sockets.push(s);
        }
        sockets
            .into_iter()
            .map(|socket| {
                socket.set_nonblocking(true)?;
                socket.set_cloexec(true)?;
                Ok(match self.local {
                    Local::Tcp(_) => ListenSocket::Tcp(socket.into()),
                    Local::Unix(_) => ListenSocket::Unix(socket.into()),
                })
            })
            .collect()
    }

    /// How logs and tests name the address.
    pub fn describe(&self) -> String {
        match &self.local {
            Local::Tcp(a) => format!("http://{a}"),
            Local::Unix(p) => format!("unix:{}", p.display()),
        }
    }
}

/// Every listening socket, plus the socket files this process created:
/// those are removed when the creating process drops it (never by a
/// forked worker, which shares the memory but not the ownership).
pub struct Listeners {
    pub sockets: Vec<Listener>,
    created_files: Vec<PathBuf>,
    owner_pid: u32,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        if std::process::id() != self.owner_pid {
            return;
        }
        for path in &self.created_files {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Sockets systemd passed us (LISTEN_FDS/LISTEN_PID), if any. They replace
/// `--bind`. The variables are removed so the app and its children do not
/// take the sockets for their own.
pub fn systemd_fds() -> Option<Vec<RawFd>> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let count: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || count <= 0 {
        return None;
    }
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    // sd_listen_fds(3): they start right after stdio.
    const SD_LISTEN_FDS_START: RawFd = 3;
    Some((SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + count).collect())
}

/// Binds (or adopts) every address, in order.
pub fn open(binds: &[BindAddr], backlog: i32, reuse_port: bool) -> Result<Listeners, BindError> {
    let mut listeners = Listeners {
        sockets: Vec::with_capacity(binds.len()),
        created_files: Vec::new(),
        owner_pid: std::process::id(),
    };
    for bind in binds {
        let describe = || match bind {
            BindAddr::Tcp(a) => a.to_string(),
            BindAddr::Unix(p) => format!("unix:{}", p.display()),
            BindAddr::Fd(n) => format!("fd://{n}"),
        };
        let bound = match bind {
            BindAddr::Tcp(addr) => bind_tcp(*addr, backlog, reuse_port),
            BindAddr::Unix(path) => bind_unix(path, backlog).inspect(|_| {
                listeners.created_files.push(path.clone());
            }),
            BindAddr::Fd(fd) => adopt_fd(*fd),
        }
        .map_err(|source| BindError {
            addr: describe(),
            source,
        })?;
        listeners.sockets.push(bound);
    }
    Ok(listeners)
}

fn tcp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarting must not fail on connections lingering in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_cloexec(true)?;
    Ok(socket)
}

fn bind_tcp(addr: SocketAddr, backlog: i32, reuse_port: bool) -> io::Result<Listener> {
    let socket = tcp_socket(addr, reuse_port)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    // Port 0 is resolved now, so workers with --reuse-port share one port.
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("TCP socket without an IP address"))?;
    Ok(Listener {
        socket,
        local: Local::Tcp(local),
        reuse_port: reuse_port.then_some(backlog),
    })
}

fn bind_unix(path: &Path, backlog: i32) -> io::Result<Listener> {
    remove_stale_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_cloexec(true)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    Ok(Listener {
        socket,
        local: Local::Unix(path.to_path_buf()),
        reuse_port: None,
    })
}

/// Takes over an inherited listening socket (`fd://N`, systemd).
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<Listener> {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor table; it fails
    // with EBADF for a number that is not open, which we report instead of
    // adopting a descriptor that does not exist.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open (checked above) and nothing else in
    // this process owns it: it was inherited for us to serve, named on the
    // command line or by systemd, and each number is adopted once.
    let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let not_listener =
        || io::Error::new(io::ErrorKind::InvalidInput, "not a listening stream socket");
    if socket.r#type().map_err(|_| not_listener())? != Type::STREAM
        || !socket.is_listener().map_err(|_| not_listener())?
    {
        return Err(not_listener());
    }
    socket.set_cloexec(true)?;
    let addr = socket.local_addr()?;
    let local = match addr.as_socket() {
        Some(a) => Local::Tcp(a),
        None => Local::Unix(
            addr.as_pathname()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(format!("fd://{fd}"))),
        ),
    };
    Ok(Listener {
        socket,
        local,
        reuse_port: None,
    })
}

/// A socket file left by a crashed server blocks bind; remove it, but only
/// when nobody is listening on it (never steal a live server's socket) and
/// never anything that is not a socket.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "path exists and is not a socket",
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening on this socket",
        )),
        Err(_) => std::fs::remove_file(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_port_zero_is_resolved_and_shared() {
        let l = open(&[BindAddr::Tcp("127.0.0.1:0".parse().unwrap())], 16, false).unwrap();
        let Local::Tcp(addr) = l.sockets[0].local() else {
            panic!("not tcp");
        };
        assert_ne!(addr.port(), 0);
        let mut sockets = l.sockets[0].for_worker().unwrap();
        assert_eq!(sockets.len(), 1);
        let Some(ListenSocket::Tcp(w)) = sockets.pop() else {
            panic!("not tcp");
        };
        assert_eq!(w.local_addr().unwrap(), *addr);
        std::net::TcpStream::connect(addr).unwrap();
    }

    #[test]
    fn reuse_port_workers_share_the_port_and_the_shared_socket() {
        let l = open(&[BindAddr::Tcp("127.0.0.1:0".parse().unwrap())], 16, true).unwrap();
        let Local::Tcp(addr) = *l.sockets[0].local() else {
            panic!("not tcp");
        };
        // Before any worker: queued on the shared socket, not refused.
        std::net::TcpStream::connect(addr).unwrap();
        let a = l.sockets[0].for_worker().unwrap();
        let b = l.sockets[0].for_worker().unwrap();
        for sockets in [&a, &b] {
            assert_eq!(sockets.len(), 2, "shared + own");
            for s in sockets {
                let ListenSocket::Tcp(s) = s else {
                    panic!("not tcp")
                };
                assert_eq!(s.local_addr().unwrap(), addr);
            }
        }
        std::net::TcpStream::connect(addr).unwrap();
    }

    #[test]
    fn unix_socket_file_removed_by_owner_only_and_stale_file_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A stale socket file: bound, then its listener closed.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let l = open(&[BindAddr::Unix(path.clone())], 16, false).unwrap();
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        // A live one is never stolen.
        let err = open(&[BindAddr::Unix(path.clone())], 16, false)
            .err()
            .expect("second bind");
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
        assert!(path.exists(), "the failed bind removed the live socket");
        drop(l);
        assert!(!path.exists());
        // Not a socket: refused, left alone.
        std::fs::write(&path, b"data").unwrap();
        assert!(open(&[BindAddr::Unix(path.clone())], 16, false).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn adopt_fd_checks_the_descriptor() {
        use std::os::fd::IntoRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let b = adopt_fd(l.into_raw_fd()).unwrap();
        assert_eq!(b.local(), &Local::Tcp(addr));
        // A plain file is not a listener.
        let f = tempfile::tempfile().unwrap();
        assert!(adopt_fd(f.into_raw_fd()).is_err());
        // A number that is not open.
        assert!(adopt_fd(100_000).is_err());
    }
}
