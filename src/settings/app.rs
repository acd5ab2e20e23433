//! A service's own settings: the `[app]` section, read into a type the
//! service defines, through the same layers as handoff's.

use std::fmt;

use serde::{Deserialize, Serialize};

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
/// impl actix_handoff::AppSettings for Hello {
///     fn validate(&self) -> Result<(), actix_handoff::SettingError> {
///         if self.greeting.is_empty() {
///             return Err(actix_handoff::SettingError::new("greeting", "", "must not be empty"));
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
