//! Logging: to the journal with structured fields when systemd connected our
//! stderr to it, human-readable text on a terminal, JSON when asked.

use std::os::fd::AsRawFd;
use std::sync::OnceLock;

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

/// Where the log goes, once `init` decided it.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Says why the process cannot go on, once: `NAME: MESSAGE` on a terminal
/// (the log would repeat it there), else the log's own event (the journal's
/// structured entry, a JSON line), where a plain stderr line would repeat it
/// or break the format.
pub fn fatal(name: &str, message: &str) {
    match FORMAT.get() {
        Some(LogFormat::Journald | LogFormat::Json) => tracing::error!("{message}"),
        _ => eprintln!("{name}: {message}"),
    }
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
    let _ = FORMAT.set(format);
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
                // Not the journal after all: text, as fatal() must know.
                let _ = FORMAT.set(LogFormat::Text);
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
