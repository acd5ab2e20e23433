//! The certificate chain and private key files: read, parsed, and checked
//! for what would make every handshake fail (an expired certificate, a key
//! of another certificate), each refusal naming the setting and the file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate expiring sooner than this is a warning at every start.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// Larger files are not certificates or keys (and `/dev/zero` is read forever).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A TLS file that cannot be served with.
#[derive(Debug, thiserror::Error)]
#[error("{key} = {path:?}: {reason}")]
pub struct TlsError {
    /// The setting that names the file: `tls.certificate` or `tls.key`.
    key: &'static str,
    path: PathBuf,
    reason: String,
}

impl TlsError {
    fn certificate(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            key: "tls.certificate",
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn key(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            key: "tls.key",
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// rustls refused its own defaults: not a file's fault.
    pub(super) fn config(reason: String) -> Self {
        Self {
            key: "tls",
            path: PathBuf::new(),
            reason,
        }
    }
}

/// A chain and key that parsed, and the warnings about them.
pub struct Checked {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub warnings: Vec<String>,
}

/// Reads both files and checks the leaf certificate's validity against `now`.
pub fn read(cert_path: &Path, key_path: &Path, now: SystemTime) -> Result<Checked, TlsError> {
    let pem = read_file(cert_path).map_err(|e| TlsError::certificate(cert_path, e))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::certificate(cert_path, format!("not PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::certificate(
            cert_path,
            "no certificate in it (PEM: -----BEGIN CERTIFICATE-----)",
        ));
    };
    let warnings = check_validity(leaf, now).map_err(|e| TlsError::certificate(cert_path, e))?;

    let pem = read_file(key_path).map_err(|e| TlsError::key(key_path, e))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::key(
            key_path,
            "no private key in it (PEM: -----BEGIN PRIVATE KEY-----, \
             RSA PRIVATE KEY or EC PRIVATE KEY)",
        ),
        e => TlsError::key(key_path, format!("not PEM: {e}")),
    })?;
    Ok(Checked {
        chain,
        key,
        warnings: warnings
            .into_iter()
            .map(|w| format!("tls.certificate = {cert_path:?}: {w}"))
            .collect(),
    })
}

/// What rustls said about a chain and key it would not take, as the
/// setting at fault.
pub fn refused(cert_path: &Path, key_path: &Path, e: rustls::Error) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => TlsError::key(
            key_path,
            format!("not the key of the certificate in {cert_path:?}"),
        ),
        e => TlsError::key(key_path, format!("cannot be used: {e}")),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "larger than {MAX_PEM_BYTES} bytes: not a PEM certificate or key"
        ));
    }
    Ok(bytes)
}

/// Refuses a certificate that expired (every handshake would fail); warns
/// about one that expires within [`EXPIRY_WARNING`] or is not valid yet.
fn check_validity(leaf: &CertificateDer<'_>, now: SystemTime) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the first certificate does not parse: {e}"))?;
    let validity = cert.validity();
    let not_after = validity.not_after.to_datetime();
    let not_before = validity.not_before.to_datetime();
    let at = |t: i64| {
        u64::try_from(t)
            .map(|s| {
                humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                    .to_string()
            })
            .unwrap_or_else(|_| t.to_string())
    };
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let after = not_after.unix_timestamp();
    if after <= now_s {
        return Err(format!("the certificate expired at {}", at(after)));
    }
    let mut warnings = Vec::new();
    let left = Duration::from_secs((after - now_s).unsigned_abs());
    if left < EXPIRY_WARNING {
        let hours = left.as_secs() / 3600;
        let left = match hours {
            0..48 => format!("{hours} hours"),
            _ => format!("{} days", hours / 24),
        };
        warnings.push(format!(
            "the certificate expires at {} (in {left}); renew it and reload",
            at(after),
        ));
    }
    let before = not_before.unix_timestamp();
    if before > now_s {
        warnings.push(format!(
            "the certificate is not valid before {}: clients refuse it until then \
             (is the clock right?)",
            at(before)
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate valid from `from` to `until` (y, m, d), and
    /// its key, written to `dir`.
    fn pair(
        dir: &Path,
        name: &str,
        from: (i32, u8, u8),
        until: (i32, u8, u8),
    ) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn day(y: i32, m: u8, d: u8) -> SystemTime {
        let t = rcgen::date_time_ymd(y, m, d).unix_timestamp();
        SystemTime::UNIX_EPOCH + Duration::from_secs(t as u64)
    }

    #[test]
    fn a_valid_pair_loads_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "a", (2030, 1, 1), (2031, 1, 1));
        let checked = read(&c, &k, day(2030, 6, 1)).unwrap();
        assert_eq!(checked.chain.len(), 1);
        assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    }

    #[test]
    fn an_expired_certificate_is_refused_naming_the_file_and_the_date() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "a", (2030, 1, 1), (2030, 2, 1));
        let e = read(&c, &k, day(2030, 3, 1)).err().unwrap().to_string();
        assert!(e.starts_with("tls.certificate = \""), "{e}");
        assert!(e.contains("a.crt"), "{e}");
        assert!(e.contains("expired at 2030-02-01T00:00:00Z"), "{e}");
    }

    #[test]
    fn a_certificate_expiring_within_14_days_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "a", (2030, 1, 1), (2030, 2, 1));
        let checked = read(&c, &k, day(2030, 1, 22)).unwrap();
        assert_eq!(checked.warnings.len(), 1);
        assert!(
            checked.warnings[0].contains("expires at 2030-02-01T00:00:00Z (in 10 days)"),
            "{:?}",
            checked.warnings
        );
        let checked = read(&c, &k, day(2030, 1, 31)).unwrap();
        assert!(
            checked.warnings[0].contains("(in 24 hours)"),
            "{:?}",
            checked.warnings
        );
        assert!(read(&c, &k, day(2030, 1, 17)).unwrap().warnings.is_empty());
    }

    #[test]
    fn a_certificate_not_valid_yet_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "a", (2030, 1, 1), (2031, 1, 1));
        let checked = read(&c, &k, day(2029, 12, 1)).unwrap();
        assert!(
            checked.warnings[0].contains("not valid before 2030-01-01"),
            "{:?}",
            checked.warnings
        );
    }

    #[test]
    fn files_that_are_not_a_certificate_or_a_key_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "a", (2020, 1, 1), (2040, 1, 1));
        let now = day(2030, 1, 1);
        let missing = dir.path().join("missing.pem");
        let e = read(&missing, &k, now).err().unwrap().to_string();
        assert!(
            e.starts_with("tls.certificate = ") && e.contains("cannot read"),
            "{e}"
        );
        let e = read(&c, &missing, now).err().unwrap().to_string();
        assert!(
            e.starts_with("tls.key = ") && e.contains("cannot read"),
            "{e}"
        );
        // The two files swapped: neither holds what its setting names.
        let e = read(&k, &c, now).err().unwrap().to_string();
        assert!(e.contains("no certificate in it"), "{e}");
        let e = read(&c, &c, now).err().unwrap().to_string();
        assert!(
            e.starts_with("tls.key = ") && e.contains("no private key in it"),
            "{e}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_by_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = pair(dir.path(), "a", (2020, 1, 1), (2040, 1, 1));
        let (_, other) = pair(dir.path(), "b", (2020, 1, 1), (2040, 1, 1));
        let settings = crate::settings::TlsSettings {
            certificate: Some(c.clone()),
            key: Some(other.clone()),
            ..Default::default()
        };
        let e = super::super::load(&settings, true, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("tls.key = ") && e.contains("b.key"), "{e}");
        assert!(
            e.contains("not the key of the certificate in") && e.contains("a.crt"),
            "{e}"
        );
    }
}
