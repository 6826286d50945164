//! Serving: the event loop and everything it drives. `event_loop` is the
//! only module in the crate that knows mio; `conn` is the per-connection
//! state machine over any stream and any [`app::App`], so neither knows
//! Python. Buffers (`inbuf`, `outbuf`, `spool`) and listening sockets
//! (`listen`, bound before the app is imported) live here too.

pub mod app;
pub mod conn;
pub mod event_loop;
pub mod inbuf;
pub mod listen;
pub mod outbuf;
pub mod spool;
pub mod stop;
