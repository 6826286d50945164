//! Processes: the master that forks and supervises workers, what a worker
//! adds to the app it serves (heartbeat, request budget), and the pid
//! file. No Python here: the binary hands the master a spawner that forks
//! inside CPython's fork hooks when it must.

pub mod master;
pub mod pidfile;
pub mod worker;
