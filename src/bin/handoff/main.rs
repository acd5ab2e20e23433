//! The reference service: handoff's demo routes, built on the library's
//! public API alone, as any application would be. Its routes name the
//! process that answers, which is what the restart and reload tests read.

mod routes;

use actix_web::App;

fn main() -> std::process::ExitCode {
    actix_handoff::Service::with_settings::<routes::Demo>()
        .name(routes::NAME)
        .version(routes::VERSION)
        .run(|_| {
            App::new()
                .configure(actix_handoff::json_errors)
                .configure(routes::configure)
        })
}
