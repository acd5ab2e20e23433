//! Durations in settings, written the way systemd units write them: `"30s"`,
//! `"1min 30s"`, `"250ms"`; a bare integer means seconds. A service's own
//! settings use the same with `#[serde(with = "actix_handoff::duration")]`:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Slow {
//!     #[serde(with = "actix_handoff::duration")]
//!     max_delay: std::time::Duration,
//! }
//! let slow: Slow = toml::from_str("max_delay = \"1min 30s\"").unwrap();
//! assert_eq!(slow.max_delay.as_secs(), 90);
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserializer, Serializer, de};

/// `30s`, `1m 30s`, `250ms`: humantime's rendering.
pub fn display(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&display(*d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as \"30s\", \"1min 30s\", \"250ms\", or whole seconds")
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(secs))
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
        u64::try_from(secs)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("{secs} is negative; a duration is 0 or more")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        if let Ok(secs) = text.trim().parse::<u64>() {
            return Ok(Duration::from_secs(secs));
        }
        humantime::parse_duration(text)
            .map_err(|e| E::custom(format!("{text:?} is not a duration ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        d: Duration,
    }

    fn parse(toml_value: &str) -> Result<Duration, String> {
        toml::from_str::<Holder>(&format!("d = {toml_value}"))
            .map(|h| h.d)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_systemd_style_strings_and_bare_seconds() {
        assert_eq!(parse("\"30s\""), Ok(Duration::from_secs(30)));
        assert_eq!(parse("\"1min 30s\""), Ok(Duration::from_secs(90)));
        assert_eq!(parse("\"250ms\""), Ok(Duration::from_millis(250)));
        assert_eq!(parse("12"), Ok(Duration::from_secs(12)));
        assert_eq!(parse("\"12\""), Ok(Duration::from_secs(12)));
    }

    #[test]
    fn rejects_garbage_and_negative_values_with_the_value_in_the_message() {
        let err = parse("\"soon\"").unwrap_err();
        assert!(err.contains("\"soon\" is not a duration"), "{err}");
        let err = parse("-3").unwrap_err();
        assert!(err.contains("-3 is negative"), "{err}");
    }

    #[test]
    fn display_round_trips() {
        let d = Duration::from_millis(90_250);
        assert_eq!(parse(&format!("\"{}\"", display(d))), Ok(d));
    }
}
