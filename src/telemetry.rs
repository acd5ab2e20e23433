//! Logging: to the journal with structured fields when systemd connected our
//! stderr to it, human-readable text on a terminal, JSON when asked.

use std::os::fd::AsRawFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogFormat, LogSettings};

/// True when stderr is the stream systemd named in `JOURNAL_STREAM`
/// (`device:inode`), the check systemd.exec(5) recommends: a child whose
/// stderr was redirected elsewhere must not log to the journal.
pub fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat only writes into the zeroed struct we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(std::io::stderr().as_raw_fd(), &mut stat) } != 0 {
        return false;
    }
    stat.st_dev == dev && stat.st_ino == ino
}

/// Installs the global subscriber. The level was validated with the config.
pub fn init(settings: &LogSettings, name: &str) {
    let filter = EnvFilter::builder()
        .parse(&settings.level)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);

    let format = match settings.format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                registry
                    .with(layer.with_syslog_identifier(name.to_owned()))
                    .init();
            }
            Err(e) => {
                registry
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                    .init();
                tracing::warn!(error = %e, "journald unreachable; logging text to stderr");
            }
        },
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Text | LogFormat::Auto => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}
