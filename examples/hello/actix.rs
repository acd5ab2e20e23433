//! The hello service on actix-web's own `HttpServer`: the same route and
//! handler as `handoff.rs`, for the cost benchmark to compare with.
//! `cargo run --example hello-actix` (`LISTEN=127.0.0.1:8080`, `WORKERS=2`).

mod app;

use actix_web::{App, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let workers = std::env::var("WORKERS").map_or(2, |w| w.parse().unwrap_or(2));
    let settings = web::Data::new(app::Hello::default());
    HttpServer::new(move || {
        App::new()
            .app_data(settings.clone())
            .service(handoff::get("/hello", app::hello))
    })
    .workers(workers)
    .bind(listen)?
    .run()
    .await
}
