//! `--pid PATH`: the serving process's id in a file, for init scripts and
//! `kill -HUP $(cat PATH)`; removed again at exit.

use std::io;
use std::path::{Path, PathBuf};

/// The pid file, removed when the process that wrote it drops this (a
/// forked worker shares the memory but never removes it).
pub struct PidFile {
    path: PathBuf,
    owner_pid: u32,
}

impl PidFile {
    /// Writes our pid to `path`, refusing to overwrite the file of a
    /// server that is still running. A stale file (its process is gone) is
    /// replaced.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        let pid = std::process::id();
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(other) = text.trim().parse::<i32>() {
                let alive = other > 0
                    && other as u32 != pid
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(other), None).is_ok();
                if alive {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("process {other} is running with this pid file"),
                    ));
                }
            }
        }
        // Written whole, then renamed: a reader never sees a partial pid.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        io::Write::write_all(&mut tmp, format!("{pid}\n").as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            owner_pid: pid,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if std::process::id() == self.owner_pid {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_refused_when_live_replaced_when_stale_removed_at_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        let f = PidFile::create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(f);
        assert!(!path.exists());

        // pid 1 is always alive.
        std::fs::write(&path, "1\n").unwrap();
        assert!(PidFile::create(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");

        // A pid no process has (above pid_max), or garbage: replaced.
        std::fs::write(&path, "2147483647\n").unwrap();
        drop(PidFile::create(&path).unwrap());
        std::fs::write(&path, "garbage").unwrap();
        drop(PidFile::create(&path).unwrap());
        assert!(!path.exists());
    }
}
