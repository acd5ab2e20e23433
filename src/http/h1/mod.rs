//! HTTP/1.1: actix-http's dispatcher serves each connection, inside
//! handoff's connection type (`conn`), which bounds what a client can cost
//! and follows where the connection stands between requests (`framing`),
//! so that an idle one can be handed to the next process. The connection
//! type is also the stream TLS and HTTP/2 run on.

pub mod conn;
mod framing;
