//! The notes service on actix-web's own `HttpServer`, as it was before
//! handoff: `cargo run --example notes-actix` (settings from `NOTES__*`
//! variables, e.g. `NOTES__DATABASE=/tmp/notes.db`). `handoff.rs` is the
//! same service on handoff; only `main` differs.

mod app;

use actix_web::{App, HttpServer, middleware, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::init_from_env(env_logger::Env::default().default_filter_or("info"));
    let settings: app::Settings = config::Config::builder()
        .add_source(config::Environment::with_prefix("NOTES").separator("__"))
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(std::io::Error::other)?;
    settings
        .check()
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let pool = app::open_pool(&settings).map_err(std::io::Error::other)?;
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(pool.clone()))
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
    .workers(2)
    .bind(("127.0.0.1", 8080))?
    .run()
    .await
}
