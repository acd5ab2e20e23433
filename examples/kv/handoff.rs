//! The kv service on handoff: `cargo run --example kv` (settings in
//! `[app]`, or `HANDOFF__APP__TOKENS=...`). `actix.rs` is the same service
//! on actix-web's `HttpServer`; only `main` differs.

mod app;

use actix_cors::Cors;
use actix_web::{App, middleware, web};

impl actix_handoff::AppSettings for app::Settings {
    fn validate(&self) -> Result<(), actix_handoff::SettingError> {
        self.check()
            .map_err(|(key, value, why)| actix_handoff::SettingError::new(key, value, why))
    }
}

fn main() -> std::process::ExitCode {
    let service = actix_handoff::Service::with_settings::<app::Settings>()
        .state(|settings| async move { Ok::<_, String>(app::Store::new(&settings)) });
    service.run(|ctx| {
        let (settings, tokens) = (ctx.settings, ctx.settings.tokens.clone());
        App::new()
            .wrap(
                Cors::default()
                    .allowed_origin(&settings.allowed_origin)
                    .allow_any_method()
                    .allow_any_header(),
            )
            .wrap(middleware::Logger::default())
            .service(
                web::scope("/kv")
                    .wrap_fn(move |req, srv| app::authorize(&tokens, req, srv))
                    .configure(app::routes),
            )
            .default_service(web::to(app::not_found))
    })
}
