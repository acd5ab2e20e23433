//! The kv service on actix-web's own `HttpServer`, as it was before
//! handoff: `cargo run --example kv-actix` (settings from `KV__*`
//! variables, e.g. `KV__TOKENS=...`). `handoff.rs` is the same service on
//! handoff; only `main` differs.

mod app;

use actix_cors::Cors;
use actix_web::{App, HttpServer, middleware, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::init_from_env(env_logger::Env::default().default_filter_or("info"));
    let settings: app::Settings = config::Config::builder()
        .add_source(
            config::Environment::with_prefix("KV")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("tokens")
                .try_parsing(true),
        )
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(std::io::Error::other)?;
    settings
        .check()
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let store = web::Data::new(app::Store::new(&settings));
    HttpServer::new(move || {
        let tokens = settings.tokens.clone();
        App::new()
            .app_data(store.clone())
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
    .workers(2)
    .bind(("127.0.0.1", 8080))?
    .run()
    .await
}
