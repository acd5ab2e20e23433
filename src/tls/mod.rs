//! HTTPS: the certificate and key named in `[tls]`, checked and loaded into
//! the rustls configuration every TLS connection of the process uses.
//!
//! The files are read once, at start (`serve`, `check-config`), never while
//! serving: a renewed certificate is taken up by a reload, whose successor
//! reads the files again; a successor that cannot use them fails the reload
//! and the old process serves on with what it loaded.
//!
//! Established TLS connections are never handed to another process (their
//! state lives in rustls, in this process): they stay where they are and are
//! drained as at a stop (see `http::conn`).

mod certificate;
pub mod tickets;

use std::sync::Arc;

use rustls::ServerConfig;

use crate::settings::TlsSettings;
pub use certificate::TlsError;

/// What the HTTPS listeners of a process serve with.
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: Arc<ServerConfig>,
    /// The same certificate for QUIC (HTTP/3): TLS 1.3 only, as QUIC
    /// requires, ALPN `h3`, no 0-RTT (its requests could be replayed).
    pub quic: Arc<ServerConfig>,
    /// The session-ticket keys, handed to the successor of a reload.
    pub tickets: Arc<tickets::Tickets>,
}

/// The TLS configuration, and what deserves a warning about it.
pub struct Loaded {
    pub tls: Option<Tls>,
    /// Things that do not stop a start but will soon (a certificate about
    /// to expire).
    pub warnings: Vec<String>,
}

/// Reads and checks `tls.certificate` and `tls.key`; `None` when HTTPS is
/// not configured. Session tickets use the keys `handed` over by the
/// previous process (see `tickets`), or new ones.
pub fn load(settings: &TlsSettings, http2: bool, handed: Option<&str>) -> Result<Loaded, TlsError> {
    let Some((cert_path, key_path)) = settings.files() else {
        return Ok(Loaded {
            tls: None,
            warnings: Vec::new(),
        });
    };
    let checked = certificate::read(cert_path, key_path, std::time::SystemTime::now())?;
    // ring: builds with a C compiler alone (aws-lc-rs, rustls' default,
    // needs cmake as well); the process's one provider, named here so no
    // process-wide default has to be installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut quic = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(checked.chain.clone(), checked.key.clone_key())
        .map_err(|e| certificate::refused(cert_path, key_path, e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(checked.chain, checked.key)
        .map_err(|e| certificate::refused(cert_path, key_path, e))?;
    // The client's preference decides among these; HTTP/1.1 for one that
    // offers no ALPN at all.
    let tickets = match handed.map(tickets::Tickets::import) {
        Some(Some(t)) => t,
        Some(None) => {
            tracing::warn!("the session-ticket keys handed over are malformed; making new ones");
            tickets::Tickets::new().ok_or_else(no_random)?
        }
        None => tickets::Tickets::new().ok_or_else(no_random)?,
    };
    let tickets = Arc::new(tickets);
    config.ticketer = tickets.clone();
    quic.ticketer = tickets.clone();
    quic.alpn_protocols = vec![b"h3".to_vec()];
    quic.max_early_data_size = 0;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Loaded {
        tls: Some(Tls {
            config: Arc::new(config),
            quic: Arc::new(quic),
            tickets,
        }),
        warnings: checked.warnings,
    })
}

fn no_random() -> TlsError {
    TlsError::config("the system's random number generator failed".to_owned())
}
