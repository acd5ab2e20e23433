//! Locking that a panic elsewhere does not spread: what handoff keeps
//! under its mutexes (queues of connections, lists of counters) stays
//! consistent whatever a panicking holder did, so a poisoned lock is taken
//! as it is rather than failing every later request and drain.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
