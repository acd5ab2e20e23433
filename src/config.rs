//! Settings and how they are layered: built-in defaults < TOML file
//! (`--config FILE` or `HANDOFF_CONFIG`) < environment (`HANDOFF__SECTION__KEY`)
//! < command-line flags.
//!
//! Unknown keys and bad values are errors that name the key and the value;
//! the caller maps them to exit status 78 (EX_CONFIG).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

use crate::duration;

/// Prefix of the environment variables that override settings:
/// `HANDOFF__SERVER__WORKERS=4` sets `server.workers`.
pub const ENV_PREFIX: &str = "HANDOFF";
/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "HANDOFF_CONFIG";
/// The most worker threads actix-server starts (it panics above).
pub const MAX_WORKERS: usize = 512;
/// The largest configuration file read; anything larger is not a
/// configuration (and `/dev/zero` would otherwise be read forever).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub limits: LimitSettings,
    pub log: LogSettings,
    pub handoff: HandoffSettings,
    /// The service's own section, read into its [`AppSettings`] type.
    #[serde(skip_serializing)]
    app: serde_json::Value,
}

/// The name of the section that holds a service's own settings.
pub const APP_SECTION: &str = "app";

/// A service's own settings: the `[app]` section of the configuration file,
/// `HANDOFF__APP__KEY` in the environment. Loaded through the same layers as
/// handoff's settings; a bad value stops the service with exit status 78
/// and a message naming `app.KEY`, from `check-config` and from start alike.
///
/// ```
/// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
/// #[serde(deny_unknown_fields, default)]
/// struct Hello {
///     greeting: String,
/// }
///
/// impl handoff::AppSettings for Hello {
///     fn validate(&self) -> Result<(), handoff::SettingError> {
///         if self.greeting.is_empty() {
///             return Err(handoff::SettingError::new("greeting", "", "must not be empty"));
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait AppSettings:
    serde::de::DeserializeOwned + Serialize + Default + Clone + Send + Sync + 'static
{
    /// Checks what deserializing cannot; called after the layers merged.
    fn validate(&self) -> Result<(), SettingError> {
        Ok(())
    }
}

/// A service without settings of its own: an `[app]` section is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoAppSettings {}

impl AppSettings for NoAppSettings {}

/// A bad value in a service's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The key within `[app]`, e.g. `greeting` (shown as `app.greeting`).
    pub key: String,
    pub value: String,
    pub reason: String,
}

impl SettingError {
    pub fn new(
        key: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A tracing filter: `info`, `debug`, `handoff=debug,actix_server=warn`, ...
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
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
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
        }
    }
}

/// What the command line contributes to the settings.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Vec<String>,
}

/// The configuration file to read: `--config FILE`, else a non-empty
/// `HANDOFF_CONFIG`, else none.
pub fn config_file(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(CONFIG_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
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
    /// Loads the layered settings: defaults, then the file named by
    /// `--config` or `HANDOFF_CONFIG`, then `HANDOFF__*` variables, then flags.
    pub fn load<A: AppSettings>(overrides: &Overrides) -> Result<(Self, A), ConfigError> {
        let file = config_file(overrides.config_file.as_deref());
        Self::load_from(file.as_deref(), std::env::vars(), overrides)
    }

    /// Like [`Settings::load`], with the file and the environment given
    /// explicitly so tests need not touch the process environment.
    pub fn load_from<A: AppSettings>(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<(Self, A), ConfigError> {
        let defaults = Config::try_from(&Settings::default())
            .map_err(|e| ConfigError::Invalid(format!("built-in defaults: {e}")))?;
        let mut builder = Config::builder().add_source(defaults);

        if let Some(path) = file {
            let text = read_config_file(path)?;
            // Parse once with toml ourselves: its errors carry line and column.
            toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
        }

        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.listen")
                .source(Some(env)),
        );

        if !overrides.listen.is_empty() {
            builder = builder
                .set_override("server.listen", overrides.listen.clone())
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }

        let merged = builder
            .build()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        check_integers(&merged, "", &Settings::default())?;
        check_integers(&merged, APP_SECTION, &A::default())?;
        let settings: Settings = merged
            .clone()
            .try_deserialize()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        settings.validate()?;
        // Through a wrapper rather than `merged.get("app")`, so that errors
        // name the key within the section (`app.greeting`), not the section.
        #[derive(Deserialize)]
        #[serde(bound = "A: AppSettings")]
        struct AppOnly<A> {
            #[serde(default)]
            app: A,
        }
        let app = merged
            .try_deserialize::<AppOnly<A>>()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?
            .app;
        app.validate().map_err(|e| ConfigError::Value {
            key: format!("{APP_SECTION}.{}", e.key),
            value: e.value,
            reason: e.reason,
        })?;
        Ok((settings, app))
    }

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
            if let Err(reason) = crate::listeners::ListenAddr::parse(addr) {
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
        if self.limits.max_body_bytes == 0 {
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

/// Reads the configuration file: a regular file of at most
/// [`MAX_CONFIG_BYTES`], so that a FIFO or a device cannot hang the start or
/// grow memory without bound.
fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let fail = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "{} bytes; a configuration file may have at most {MAX_CONFIG_BYTES}",
            meta.len()
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    // The length may have changed since the check: read no more than allowed.
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_CONFIG_BYTES + 1),
        &mut text,
    )
    .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "grew past {MAX_CONFIG_BYTES} bytes while being read"
        )));
    }
    Ok(text)
}

/// The dotted keys whose default in `defaults` is an integer, under `prefix`:
/// `server.workers`, ...
fn integer_keys(prefix: &str, defaults: &impl Serialize) -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Integer(_) => out.push(key),
                toml::Value::Table(t) => walk(&key, t, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(defaults) = toml::Table::try_from(defaults) {
        walk(prefix, &defaults, &mut out);
    }
    out
}

/// Integer settings must be given as whole numbers: the config crate would
/// otherwise round `workers = 2.5` to 3 and turn `true` into 1 without a word.
fn check_integers(
    merged: &Config,
    prefix: &str,
    defaults: &impl Serialize,
) -> Result<(), ConfigError> {
    use config::ValueKind;
    for key in integer_keys(prefix, defaults) {
        let Ok(value) = merged.get::<config::Value>(&key) else {
            continue;
        };
        let whole = match &value.kind {
            ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => true,
            ValueKind::String(text) => text.trim().parse::<u64>().is_ok(),
            _ => false,
        };
        if !whole {
            let shown = match &value.kind {
                ValueKind::Array(_) => "a list".to_owned(),
                ValueKind::Table(_) => "a table".to_owned(),
                _ => value.to_string(),
            };
            return Err(ConfigError::Value {
                key,
                value: shown,
                reason: "must be a whole number".to_owned(),
            });
        }
    }
    Ok(())
}

/// The tracing levels a bare filter word may name.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A tracing filter as `EnvFilter` parses it, except that a bare word must be
/// a level: `EnvFilter` reads `inof` as "everything from target inof", which
/// silences all logs instead of failing. Targets take `target=level`.
fn check_log_filter(filter: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every key, with values of every TOML type and plausible strings.
    const KEYS: &[&str] = &[
        "server.listen",
        "server.workers",
        "server.backlog",
        "server.max_connections",
        "server.drain_timeout",
        "server.shutdown_delay",
        "server.keep_alive",
        "server.client_header_timeout",
        "server.client_body_timeout",
        "server.send_timeout",
        "limits.max_body_bytes",
        "log.level",
        "log.format",
        "handoff.ready_timeout",
        "server.nope",
        "nope.nope",
        "app.nope",
    ];

    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0u64..2000).prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:?}")),
            any::<bool>().prop_map(|b| b.to_string()),
            "[a-z0-9 .:/=,]{0,12}".prop_map(|s| format!("{s:?}")),
            prop_oneof![
                Just("\"30s\""),
                Just("\"0s\""),
                Just("\"2h\""),
                Just("\"info\""),
                Just("\"json\""),
                Just("[\"127.0.0.1:0\"]"),
                Just("[]"),
                Just("[1, 2]"),
                Just("{ a = 1 }"),
            ]
            .prop_map(str::to_owned),
        ]
    }

    fn document() -> impl Strategy<Value = String> {
        prop::collection::vec((prop::sample::select(KEYS), toml_value()), 0..6).prop_map(|pairs| {
            // Dotted keys at the top level are valid TOML for tables.
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect()
        })
    }

    fn env_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (
                prop::sample::select(KEYS),
                prop_oneof!["[0-9]{1,5}", "[0-9]\\.[0-9]", "[a-z0-9 ,.:]{0,10}"],
            ),
            0..4,
        )
        .prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| {
                    let var = format!("HANDOFF__{}", k.replace('.', "__").to_uppercase());
                    (var, v)
                })
                .collect()
        })
    }

    proptest! {
        /// No file and no environment makes loading panic; what loads is
        /// within the bounds the server relies on (workers <= 512, ...) and
        /// round-trips through what `check-config` prints. (That
        /// `check-config` and a start refuse the same files with exit 78 is
        /// tests/service.rs's `check_config_and_start_agree_on_what_they_refuse`,
        /// on the real binary.)
        #[test]
        fn any_configuration_loads_or_is_refused_without_panic(
            text in document(),
            env in env_pairs(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.toml");
            std::fs::write(&path, &text).unwrap();
            match Settings::load_from::<NoAppSettings>(Some(&path), env, &Overrides::default()) {
                Ok((s, app)) => {
                    prop_assert!(s.server.workers <= MAX_WORKERS);
                    prop_assert!(s.server.max_connections >= 1);
                    prop_assert!(!s.server.send_timeout.is_zero());
                    prop_assert!(check_log_filter(&s.log.level).is_ok());
                    // What check-config prints loads again to the same.
                    let again = dir.path().join("again.toml");
                    std::fs::write(&again, s.to_toml(&app)).unwrap();
                    let reloaded = Settings::load_from::<NoAppSettings>(
                        Some(&again),
                        vec![],
                        &Overrides::default(),
                    );
                    prop_assert_eq!(reloaded.ok().map(|(s, _)| s), Some(s));
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn whole_numbers_only_for_integer_settings() {
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let load = |env| Settings::load_from::<NoAppSettings>(None, env, &Overrides::default());
        assert!(load(env("HANDOFF__SERVER__WORKERS", "4")).is_ok());
        let err = load(env("HANDOFF__SERVER__WORKERS", "2.5")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "server.workers = \"2.5\": must be a whole number"
        );
        let err = load(env("HANDOFF__SERVER__WORKERS", "513")).unwrap_err();
        assert!(err.to_string().contains("0 (one per CPU) to 512"), "{err}");
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Greeter {
        greeting: String,
        times: u32,
    }

    impl Default for Greeter {
        fn default() -> Self {
            Self {
                greeting: "hello".to_owned(),
                times: 1,
            }
        }
    }

    impl AppSettings for Greeter {
        fn validate(&self) -> Result<(), SettingError> {
            if self.times == 0 || self.times > 10 {
                return Err(SettingError::new("times", self.times, "must be 1 to 10"));
            }
            Ok(())
        }
    }

    #[test]
    fn a_service_section_is_layered_and_validated_like_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let load = |text: &str, env: Vec<(String, String)>| {
            std::fs::write(&file, text).unwrap();
            Settings::load_from::<Greeter>(Some(&file), env, &Overrides::default())
        };
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];

        let (_, app) = load("", vec![]).unwrap();
        assert_eq!(app, Greeter::default(), "no section: the defaults");
        let (_, app) = load("[app]\ngreeting = \"hi\"\n", vec![]).unwrap();
        assert_eq!((app.greeting.as_str(), app.times), ("hi", 1));
        let (_, app) = load(
            "[app]\ngreeting = \"hi\"\n",
            env("HANDOFF__APP__TIMES", "3"),
        )
        .unwrap();
        assert_eq!(
            (app.greeting.as_str(), app.times),
            ("hi", 3),
            "environment over file"
        );

        let err = load("[app]\ntimes = 11\n", vec![]).unwrap_err();
        assert_eq!(err.to_string(), "app.times = \"11\": must be 1 to 10");
        let err = load("[app]\ntimes = 2.5\n", vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app.times = \"2.5\": must be a whole number"
        );
        let err = load("[app]\ngreetin = \"x\"\n", vec![]).unwrap_err();
        assert!(err.to_string().contains("unknown field `greetin`"), "{err}");
        let err = load("[app]\ntimes = \"many\"\n", vec![]).unwrap_err();
        assert!(err.to_string().contains("app.times"), "{err}");

        // check-config shows the section; a service without one refuses it.
        let (s, app) = load("[app]\ngreeting = \"hi\"\n", vec![]).unwrap();
        assert!(
            s.to_toml(&app)
                .contains("[app]\ngreeting = \"hi\"\ntimes = 1")
        );
        std::fs::write(&file, "[app]\ngreeting = \"hi\"\n").unwrap();
        let err = Settings::load_from::<NoAppSettings>(Some(&file), vec![], &Overrides::default())
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `greeting`"),
            "{err}"
        );
    }

    #[test]
    fn a_bare_word_in_the_log_filter_must_be_a_level() {
        assert!(check_log_filter("info").is_ok());
        assert!(check_log_filter("WARN,handoff=debug").is_ok());
        assert!(check_log_filter("handoff[request]=trace").is_ok());
        let err = check_log_filter("inof").unwrap_err();
        assert!(err.contains("\"inof\" is not a level"), "{err}");
        assert!(check_log_filter("info,handof").is_err());
    }
}
