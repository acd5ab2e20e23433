//! A request body that reports when it was read to the end, so that the
//! connection can stop bounding its arrival (`ConnState`) and the middleware
//! can tell a handler that left part of it unread.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_core::Stream;

use super::conn::ConnState;

pub struct Tracked {
    inner: Payload,
    conn: Option<Rc<ConnState>>,
    finished: Rc<Cell<bool>>,
}

impl Tracked {
    /// Wraps `inner`; the body must be complete by `deadline`. Returns the
    /// payload to give the handler and a flag that turns true at its end.
    pub fn wrap(
        inner: Payload,
        conn: Option<Rc<ConnState>>,
        deadline: tokio::time::Instant,
    ) -> (Payload, Rc<Cell<bool>>) {
        if let Some(conn) = &conn {
            conn.expect_body_until(deadline);
        }
        let finished = Rc::new(Cell::new(false));
        let tracked = Self {
            inner,
            conn,
            finished: finished.clone(),
        };
        (Payload::from(Box::pin(tracked) as Pin<Box<_>>), finished)
    }
}

impl Stream for Tracked {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(None) = next {
            this.finished.set(true);
            if let Some(conn) = &this.conn {
                conn.body_complete();
            }
        }
        next
    }
}
