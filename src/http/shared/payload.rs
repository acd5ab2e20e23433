//! A request body that reports when it was read to the end, so that the
//! connection can stop bounding its arrival (`ConnState`) and the middleware
//! can tell a handler that left part of it unread; and that ends in
//! `PayloadError::Overflow` past `limits.max_body_bytes` when that is set,
//! whether the body announced its length or not.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_core::Stream;

use crate::http::h1::conn::ConnState;

pub struct Tracked {
    inner: Payload,
    conn: Option<Rc<ConnState>>,
    watch: Rc<BodyWatch>,
    /// Bytes the handler may read at most, and has read so far.
    limit: Option<u64>,
    read: u64,
}

/// What the middleware learns of a body as its handler reads it.
#[derive(Debug, Default)]
pub struct BodyWatch {
    finished: Cell<bool>,
    overflowed: Cell<bool>,
}

impl BodyWatch {
    /// The handler read the body to its end.
    pub fn finished(&self) -> bool {
        self.finished.get()
    }

    /// The body went past the limit (and the handler got an error).
    pub fn overflowed(&self) -> bool {
        self.overflowed.get()
    }
}

impl Tracked {
    /// Wraps `inner`; the body must be complete by `deadline`, and no longer
    /// than `limit`. Returns the payload to give the handler and what it
    /// will learn of it.
    pub fn wrap(
        inner: Payload,
        conn: Option<Rc<ConnState>>,
        deadline: tokio::time::Instant,
        limit: Option<u64>,
    ) -> (Payload, Rc<BodyWatch>) {
        if let Some(conn) = &conn {
            conn.expect_body_until(deadline);
        }
        let watch = Rc::new(BodyWatch::default());
        let tracked = Self {
            inner,
            conn,
            watch: watch.clone(),
            limit,
            read: 0,
        };
        (Payload::from(Box::pin(tracked) as Pin<Box<_>>), watch)
    }
}

impl Stream for Tracked {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.watch.overflowed.get() {
            return Poll::Ready(None);
        }
        let next = Pin::new(&mut this.inner).poll_next(cx);
        match &next {
            Poll::Ready(None) => {
                this.watch.finished.set(true);
                if let Some(conn) = &this.conn {
                    conn.body_complete();
                }
            }
            Poll::Ready(Some(Ok(chunk))) => {
                this.read += chunk.len() as u64;
                if this.limit.is_some_and(|limit| this.read > limit) {
                    this.watch.overflowed.set(true);
                    return Poll::Ready(Some(Err(PayloadError::Overflow)));
                }
            }
            _ => {}
        }
        next
    }
}
