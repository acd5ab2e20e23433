//! The settings of a handoff service: its sections (`server`, `tls`,
//! `limits`, `log`, `handoff`, and the service's own `app`), their defaults and the
//! checks that serde cannot make. How they are layered from defaults, file,
//! environment and flags is `layers`.
//!
//! Unknown keys and bad values are errors that name the key and the value;
//! the caller maps them to exit status 78 (EX_CONFIG).

mod app;
pub mod duration;
mod layers;

pub use app::{APP_SECTION, AppSettings, NoAppSettings, SettingError};
pub use layers::{Overrides, config_file};

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most worker threads actix-server starts (it panics above).
pub const MAX_WORKERS: usize = 512;
/// The largest configuration file read; anything larger is not a
/// configuration (and `/dev/zero` would otherwise be read forever).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub tls: TlsSettings,
    pub limits: LimitSettings,
    pub log: LogSettings,
    pub handoff: HandoffSettings,
    /// The service's own section, read into its [`AppSettings`] type.
    #[serde(skip_serializing)]
    app: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Addresses bound when systemd passes no sockets: `host:port` or a unix
    /// socket path (anything containing a `/`).
    pub listen: Vec<String>,
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    /// listen(2) backlog for sockets handoff binds itself (systemd's own
    /// sockets use the unit's `Backlog=`).
    pub backlog: u32,
    /// Concurrent connections per worker before accept pauses.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// Lame duck: how long to keep serving after SIGTERM, with `/readyz`
    /// answering 503, before the drain begins, so that a load balancer's
    /// health check takes the host out first. Not applied to a reload.
    #[serde(with = "duration")]
    pub shutdown_delay: Duration,
    /// Idle time after which a keep-alive connection is closed; 0 disables keep-alive.
    #[serde(with = "duration")]
    pub keep_alive: Duration,
    /// Time a client has to send the request head (headers).
    #[serde(with = "duration")]
    pub client_header_timeout: Duration,
    /// Time a client has to send the request body, from the end of the head.
    #[serde(with = "duration")]
    pub client_body_timeout: Duration,
    /// Longest time a response may wait for the client to read any of it
    /// (between two successful writes); then the connection is closed.
    #[serde(with = "duration")]
    pub send_timeout: Duration,
    /// Serve HTTP/2: h2 offered by ALPN on TLS, h2c with prior knowledge on
    /// plain sockets.
    pub http2: bool,
    /// Serve HTTP/3 on the UDP socket named `quic` (or `tls.quic_listen`),
    /// advertised on HTTPS answers with `Alt-Svc`. Off while there is no
    /// such socket.
    pub http3: bool,
    /// The host name the application is told it serves (`AppConfig::host`:
    /// URLs it builds for requests that name no host), as actix-web's
    /// `HttpServer::server_hostname`; unset, each socket's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// HTTPS: served on the sockets named `https` (`FileDescriptorName=https`),
/// or bound from `listen` when systemd passes no sockets. The files are read
/// at every start, so a reload is how a renewed certificate is taken up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM file: the certificate, then the chain up to (not including) the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// PEM file: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Addresses bound for HTTPS when systemd passes no sockets.
    pub listen: Vec<String>,
    /// UDP addresses bound for HTTP/3 (QUIC) when systemd passes no
    /// sockets, `host:port`.
    pub quic_listen: Vec<String>,
    /// Time a client has to complete the TLS handshake from its connect.
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
    /// Handshakes one worker runs at once; more wait (within the timeout).
    pub max_handshakes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest request body accepted, in bytes, for every route and every
    /// body, announced or not (413 naming this setting). Unset: the
    /// application's own limits decide, as under actix-web's `HttpServer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Largest request head (request line and fields), HTTP/1.1 and HTTP/2
    /// alike: 431 beyond.
    pub max_head_bytes: usize,
    /// HTTP/2 streams one connection may have open at once; the next is
    /// refused (REFUSED_STREAM, which clients retry).
    pub max_concurrent_streams: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A tracing filter: `info`, `debug`, `actix_handoff=debug,actix_server=warn`, ...
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// The journal under systemd (`JOURNAL_STREAM`), human-readable text otherwise.
    Auto,
    Text,
    Json,
    Journald,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandoffSettings {
    /// How long a new process may take to report ready during a reload
    /// before it is stopped and the old process keeps serving.
    #[serde(with = "duration")]
    pub ready_timeout: Duration,
    /// After a reload the new process passes the datagrams of the old
    /// one's QUIC connections to it. Off, they are dropped and those
    /// connections end at every reload: only to see what it prevents.
    pub quic_forwarding: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: vec!["127.0.0.1:8080".to_owned()],
            workers: 0,
            backlog: 1024,
            max_connections: 25_000,
            drain_timeout: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
            keep_alive: Duration::from_secs(5),
            client_header_timeout: Duration::from_secs(5),
            client_body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            http2: true,
            http3: true,
            hostname: None,
        }
    }
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            certificate: None,
            key: None,
            listen: Vec::new(),
            quic_listen: Vec::new(),
            // Between actix-tls's 3 s, which a slow mobile link on a cold
            // start can miss, and nginx's 60 s, which lets a silent client
            // hold a handshake slot for a minute.
            handshake_timeout: Duration::from_secs(10),
            // actix-tls's default per worker: a handshake costs a few
            // hundred microseconds of CPU, so 256 keep a worker busy without
            // letting a flood of ClientHellos starve the requests.
            max_handshakes: 256,
        }
    }
}

impl TlsSettings {
    /// Certificate and key, when HTTPS is configured.
    pub fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.certificate.as_deref()?, self.key.as_deref()?))
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: None,
            max_head_bytes: 32 * 1024,
            // RFC 9113 advises no fewer than 100; nginx says 128, Go 250.
            max_concurrent_streams: 100,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Auto,
        }
    }
}

impl Default for HandoffSettings {
    fn default() -> Self {
        Self {
            ready_timeout: Duration::from_secs(30),
            quic_forwarding: true,
        }
    }
}

/// A configuration that cannot be used; the message names key and value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{key} = {value:?}: {reason}")]
    Value {
        key: String,
        value: String,
        reason: String,
    },
}

impl Settings {
    /// Checks what serde cannot: ranges and the syntax of strings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: &dyn fmt::Display, reason: &str| {
            Err(ConfigError::Value {
                key: key.to_owned(),
                value: value.to_string(),
                reason: reason.to_owned(),
            })
        };
        let s = &self.server;
        if s.listen.is_empty() {
            return bad(
                "server.listen",
                &"[]",
                "at least one address is needed when systemd passes no sockets",
            );
        }
        for addr in &s.listen {
            if let Err(reason) = ListenAddr::parse(addr) {
                return bad("server.listen", addr, &reason);
            }
        }
        if s.workers > MAX_WORKERS {
            return bad(
                "server.workers",
                &s.workers,
                &format!("must be 0 (one per CPU) to {MAX_WORKERS}"),
            );
        }
        if s.backlog == 0 || s.backlog > 65_535 {
            return bad("server.backlog", &s.backlog, "must be 1 to 65535");
        }
        if s.max_connections == 0 {
            return bad("server.max_connections", &0, "must be at least 1");
        }
        if s.drain_timeout.is_zero() || s.drain_timeout > Duration::from_secs(3600) {
            return bad(
                "server.drain_timeout",
                &duration::display(s.drain_timeout),
                "must be more than 0s and at most 1h",
            );
        }
        if s.shutdown_delay > Duration::from_secs(3600) {
            return bad(
                "server.shutdown_delay",
                &duration::display(s.shutdown_delay),
                "must be at most 1h",
            );
        }
        if s.client_header_timeout.is_zero() {
            return bad(
                "server.client_header_timeout",
                &"0s",
                "must be more than 0s, or slow clients hold connections forever",
            );
        }
        if s.client_body_timeout.is_zero() {
            return bad("server.client_body_timeout", &"0s", "must be more than 0s");
        }
        if s.send_timeout.is_zero() {
            return bad(
                "server.send_timeout",
                &"0s",
                "must be more than 0s, or clients that never read hold connections forever",
            );
        }
        if let Some(host) = &self.server.hostname
            && (host.is_empty()
                || host.len() > 255
                || host
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()))
        {
            return bad(
                "server.hostname",
                host,
                "must be a host name (with a port if not the scheme's), 1 to 255 bytes, no spaces",
            );
        }
        let t = &self.tls;
        match (&t.certificate, &t.key) {
            (Some(_), None) => {
                return bad(
                    "tls.key",
                    &"(unset)",
                    "tls.certificate is set: name its key too",
                );
            }
            (None, Some(_)) => {
                return bad(
                    "tls.certificate",
                    &"(unset)",
                    "tls.key is set: name its certificate too",
                );
            }
            _ => {}
        }
        for addr in &t.listen {
            if let Err(reason) = ListenAddr::parse(addr) {
                return bad("tls.listen", addr, &reason);
            }
        }
        for addr in &t.quic_listen {
            if matches!(ListenAddr::parse(addr), Ok(ListenAddr::Unix(_)) | Err(_)) {
                return bad(
                    "tls.quic_listen",
                    addr,
                    "must be host:port (QUIC runs over UDP)",
                );
            }
        }
        if t.quic_listen.len() > 1 {
            return bad(
                "tls.quic_listen",
                &t.quic_listen.join(","),
                "one address: HTTP/3 is served on one UDP socket ([::] takes IPv4 too)",
            );
        }
        if !t.quic_listen.is_empty() && t.files().is_none() {
            return bad(
                "tls.quic_listen",
                &t.quic_listen.join(","),
                "HTTP/3 needs tls.certificate and tls.key",
            );
        }
        if !t.listen.is_empty() && t.files().is_none() {
            return bad(
                "tls.listen",
                &t.listen.join(","),
                "HTTPS needs tls.certificate and tls.key",
            );
        }
        if t.handshake_timeout.is_zero() {
            return bad(
                "tls.handshake_timeout",
                &"0s",
                "must be more than 0s, or silent clients hold connections forever",
            );
        }
        if t.max_handshakes == 0 {
            return bad("tls.max_handshakes", &0, "must be at least 1");
        }
        let head = self.limits.max_head_bytes;
        if !(1024..=128 * 1024).contains(&head) {
            return bad(
                "limits.max_head_bytes",
                &head,
                "must be 1024 to 131072 (actix-http buffers at most 128 KiB of a head)",
            );
        }
        if self.limits.max_concurrent_streams == 0 {
            return bad("limits.max_concurrent_streams", &0, "must be at least 1");
        }
        if self.limits.max_body_bytes == Some(0) {
            return bad("limits.max_body_bytes", &0, "must be at least 1");
        }
        if let Err(reason) = check_log_filter(&self.log.level) {
            return bad("log.level", &self.log.level, &reason);
        }
        if self.handoff.ready_timeout.is_zero() {
            return bad("handoff.ready_timeout", &"0s", "must be more than 0s");
        }
        Ok(())
    }

    /// The effective settings as TOML, for `check-config`, with the
    /// service's own section when it has any keys.
    pub fn to_toml(&self, app: &impl AppSettings) -> String {
        let mut table = toml::Table::try_from(self).expect("settings always serialize to TOML");
        match toml::Table::try_from(app) {
            Ok(section) if !section.is_empty() => {
                table.insert(APP_SECTION.to_owned(), toml::Value::Table(section));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the app settings do not serialize to TOML"),
        }
        toml::to_string_pretty(&table).expect("a TOML table serializes")
    }
}

/// The tracing levels a bare filter word may name.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A tracing filter as `EnvFilter` parses it, except that a bare word must be
/// a level: `EnvFilter` reads `inof` as "everything from target inof", which
/// silences all logs instead of failing. Targets take `target=level`.
pub(crate) fn check_log_filter(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map_err(|e| e.to_string())?;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is not a level ({}); name a target as target=level",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// A listening address in the settings: `host:port`, or a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(String),
    Unix(PathBuf),
}

impl ListenAddr {
    /// Anything with a `/` is a unix socket path (`./app.sock`, `/run/x.sock`);
    /// everything else must be `host:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.contains('/') {
            return Ok(Self::Unix(PathBuf::from(text)));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err("expected host:port (e.g. 127.0.0.1:8080, [::]:8080) \
                 or a unix socket path containing '/'"
                .to_owned());
        };
        if host.is_empty() {
            return Err("host is empty; use 0.0.0.0:PORT or [::]:PORT for all addresses".into());
        }
        port.parse::<u16>()
            .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))?;
        Ok(Self::Tcp(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_word_in_the_log_filter_must_be_a_level() {
        assert!(check_log_filter("info").is_ok());
        assert!(check_log_filter("WARN,actix_handoff=debug").is_ok());
        assert!(check_log_filter("handoff[request]=trace").is_ok());
        let err = check_log_filter("inof").unwrap_err();
        assert!(err.contains("\"inof\" is not a level"), "{err}");
        assert!(check_log_filter("info,handof").is_err());
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key_together() {
        let with = |f: fn(&mut TlsSettings)| {
            let mut s = Settings::default();
            f(&mut s.tls);
            s.validate().err().map(|e| e.to_string())
        };
        assert_eq!(with(|_| {}), None);
        let e = with(|t| t.certificate = Some("/c.pem".into())).unwrap();
        assert!(e.starts_with("tls.key = \"(unset)\""), "{e}");
        let e = with(|t| t.key = Some("/k.pem".into())).unwrap();
        assert!(e.starts_with("tls.certificate = \"(unset)\""), "{e}");
        let e = with(|t| t.listen = vec!["127.0.0.1:8443".into()]).unwrap();
        assert!(e.contains("HTTPS needs tls.certificate and tls.key"), "{e}");
        let e = with(|t| t.handshake_timeout = Duration::ZERO).unwrap();
        assert!(e.starts_with("tls.handshake_timeout"), "{e}");
        let e = with(|t| t.max_handshakes = 0).unwrap();
        assert!(e.starts_with("tls.max_handshakes"), "{e}");
        let e = with(|t| {
            t.certificate = Some("/c".into());
            t.key = Some("/k".into());
            t.quic_listen = vec!["127.0.0.1:8443".into(), "[::1]:8443".into()];
        })
        .unwrap();
        assert!(e.contains("one address"), "{e}");
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            ListenAddr::parse("127.0.0.1:8080"),
            Ok(ListenAddr::Tcp("127.0.0.1:8080".into()))
        );
        assert_eq!(
            ListenAddr::parse("[::]:80"),
            Ok(ListenAddr::Tcp("[::]:80".into()))
        );
        assert_eq!(
            ListenAddr::parse("./h.sock"),
            Ok(ListenAddr::Unix("./h.sock".into()))
        );
        assert!(ListenAddr::parse("8080").unwrap_err().contains("host:port"));
        assert!(ListenAddr::parse("a:99999").unwrap_err().contains("99999"));
        assert!(
            ListenAddr::parse(":80")
                .unwrap_err()
                .contains("host is empty")
        );
    }
}
