//! Exit statuses, from sysexits(3), so that a unit, a supervisor or an
//! operator can tell a bad deploy (65, 78) from a crash (70). The units
//! retry both (a restart into a bad configuration must not fail the socket:
//! README, "Units").

/// Served and drained normally.
pub const OK: u8 = 0;
/// The command line is wrong.
pub const USAGE: u8 = 64;
/// The socket-activation environment is wrong: malformed `LISTEN_FDS` or
/// `LISTEN_FDNAMES`, an fd that is not a listening stream socket, a name
/// handoff does not serve.
pub const DATAERR: u8 = 65;
/// A configured address could not be bound (in use, not permitted); or,
/// for `reload`, no handoff process at the pid takes reloads.
pub const UNAVAILABLE: u8 = 69;
/// The server failed while running.
pub const SOFTWARE: u8 = 70;
/// A reload (hand-off) failed; the old process keeps serving.
pub const TEMPFAIL: u8 = 75;
/// The configuration is invalid: unknown key, bad value, unreadable file.
pub const CONFIG: u8 = 78;
