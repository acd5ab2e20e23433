//! The mirror `App` on handoff: only `main` differs from `actix.rs`
//! (`--listen`, `HANDOFF__TLS__*` as for any handoff service).

mod app;

use actix_web::App;

fn main() -> std::process::ExitCode {
    actix_handoff::Service::new().run(|_| App::new().configure(app::configure))
}
