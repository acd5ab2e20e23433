//! What every protocol shares in front of the `App`: the middleware
//! (built-in routes, counting, body limits, `Connection: close` at a
//! drain), the request body wrapper, the built-in routes, the drain signal
//! handed to handlers, the per-worker request counts, the metrics, and the
//! state an instance's connections see.

pub mod drain_signal;
pub mod metrics;
pub mod middleware;
pub mod payload;
pub mod request_counts;
pub mod routes;
pub mod state;
