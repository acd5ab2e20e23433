//! The reference service: handoff's demo routes, built on the library's
//! public API alone, as any application would be. Its routes name the
//! process that answers, which is what the restart and reload tests read.

mod routes;

fn main() -> std::process::ExitCode {
    handoff::Service::with_settings::<routes::Demo>(routes::configure)
        .name("handoff")
        .version(routes::VERSION)
        .run()
}
