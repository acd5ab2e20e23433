//! The notes service on handoff: `cargo run --example notes` (settings in
//! `[app]`, or `HANDOFF__APP__DATABASE=/tmp/notes.db`). `actix.rs` is the
//! same service on actix-web's `HttpServer`; only `main` differs.

mod app;

use actix_web::{App, middleware, web};

impl actix_handoff::AppSettings for app::Settings {
    fn validate(&self) -> Result<(), actix_handoff::SettingError> {
        self.check()
            .map_err(|(key, value, why)| actix_handoff::SettingError::new(key, value, why))
    }
}

fn main() -> std::process::ExitCode {
    let service = actix_handoff::Service::with_settings::<app::Settings>()
        .state(|settings| async move { app::open_pool(&settings) });
    service.run(|ctx| {
        App::new()
            .app_data(web::Data::new(ctx.state.clone()))
            .wrap(middleware::Logger::default())
            .wrap(middleware::Compress::default())
            .wrap(middleware::DefaultHeaders::new().add(("X-Service", "notes")))
            .service(
                web::scope("/api")
                    .wrap(middleware::DefaultHeaders::new().add(("Cache-Control", "no-store")))
                    .configure(app::api),
            )
            .default_service(web::to(app::not_found))
    })
}
