//! The mirror `App` on actix-web's own `HttpServer`: HTTP/1.1 and h2c on
//! `LISTEN` (`bind_auto_h2c`), and with `TLS_LISTEN`, `TLS_CERT` and
//! `TLS_KEY`, HTTPS with h2 (`bind_rustls_0_23`). One worker.

mod app;

use actix_web::{App, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let server = HttpServer::new(|| App::new().configure(app::configure))
        .workers(1)
        .bind_auto_h2c(listen)?;
    let server = match std::env::var("TLS_LISTEN") {
        Ok(tls_listen) => server.bind_rustls_0_23(tls_listen, tls_config()?)?,
        Err(_) => server,
    };
    server.run().await
}

/// The certificate and key of `TLS_CERT` and `TLS_KEY`, with the ring
/// provider as handoff uses.
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
