//! The hello service on actix-web's own `HttpServer`: the same route and
//! handler as `handoff.rs`, for the cost benchmark to compare with.
//! `cargo run --example hello-actix` (`LISTEN=127.0.0.1:8080`, `WORKERS=2`;
//! with `TLS_LISTEN`, `TLS_CERT` and `TLS_KEY`, HTTPS there too, with the
//! rustls configuration handoff makes: the ring provider, h2 and http/1.1).

mod app;

use actix_web::{App, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let workers = std::env::var("WORKERS").map_or(2, |w| w.parse().unwrap_or(2));
    let settings = web::Data::new(app::Hello::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(settings.clone())
            .service(actix_handoff::get("/hello", app::hello))
    })
    .workers(workers)
    .bind(listen)?;
    let server = match std::env::var("TLS_LISTEN") {
        Ok(tls_listen) => server.bind_rustls_0_23(tls_listen, tls_config()?)?,
        Err(_) => server,
    };
    server.run().await
}

/// The certificate and key of `TLS_CERT` and `TLS_KEY`, served as handoff
/// serves them.
fn tls_config() -> std::io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let var = |name: &str| {
        std::env::var(name).map_err(|_| std::io::Error::other(format!("{name} is not set")))
    };
    let chain = CertificateDer::pem_file_iter(var("TLS_CERT")?)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(std::io::Error::other)?;
    let key = PrivateKeyDer::from_pem_file(var("TLS_KEY")?).map_err(std::io::Error::other)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(std::io::Error::other)
}
