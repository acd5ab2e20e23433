//! How settings are layered: built-in defaults < TOML file (`--config FILE`
//! or `HANDOFF_CONFIG`) < environment (`HANDOFF__SECTION__KEY`) < command-line
//! flags; and the checks serde and the config crate do not make.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

use super::{APP_SECTION, AppSettings, ConfigError, MAX_CONFIG_BYTES, Settings};

/// Prefix of the environment variables that override settings:
/// `HANDOFF__SERVER__WORKERS=4` sets `server.workers`.
pub const ENV_PREFIX: &str = "HANDOFF";
/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "HANDOFF_CONFIG";

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
        // A setting whose default is a list (server.listen, an [app] list)
        // takes a comma-separated value from the environment.
        let mut environment = Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",");
        let lists = keys_where("", &Settings::default(), toml::Value::is_array)
            .into_iter()
            .chain(keys_where(
                APP_SECTION,
                &A::default(),
                toml::Value::is_array,
            ));
        for key in lists {
            environment = environment.with_list_parse_key(&key);
        }
        builder = builder.add_source(environment.source(Some(env)));

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

/// The dotted keys, under `prefix`, whose default in `defaults` is of the
/// kind `is` tells: `server.workers` for integers, `server.listen` for
/// lists, ...
fn keys_where(
    prefix: &str,
    defaults: &impl Serialize,
    is: fn(&toml::Value) -> bool,
) -> Vec<String> {
    fn walk(
        prefix: &str,
        table: &toml::Table,
        is: fn(&toml::Value) -> bool,
        out: &mut Vec<String>,
    ) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&key, t, is, out),
                v if is(v) => out.push(key),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(defaults) = toml::Table::try_from(defaults) {
        walk(prefix, &defaults, is, &mut out);
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
    for key in keys_where(prefix, defaults, toml::Value::is_integer) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{MAX_WORKERS, NoAppSettings, SettingError, check_log_filter};
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

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct WithList {
        tokens: Vec<String>,
    }

    impl AppSettings for WithList {}

    #[test]
    fn a_list_setting_of_the_service_takes_a_comma_separated_environment_value() {
        let env = vec![("HANDOFF__APP__TOKENS".to_owned(), "a,b".to_owned())];
        let (_, app) = Settings::load_from::<WithList>(None, env, &Overrides::default()).unwrap();
        assert_eq!(app.tokens, ["a", "b"]);
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
}
