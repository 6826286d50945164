//! Logs: the error log and the files logs go to (`logfile`), the access
//! log's format (`access_log`) and its non-blocking batches (`logbuf`),
//! and the local time zone both timestamps use (`localtime`). Pure of
//! Python and mio, so the event loop may call into it directly.

pub mod access_log;
pub mod localtime;
pub mod logbuf;
pub mod logfile;
