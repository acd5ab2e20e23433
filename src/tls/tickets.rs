//! TLS session tickets whose keys outlive a process: the successor of a
//! reload gets them from its predecessor over the hand-off channel, so a
//! client that resumes its session after a reload resumes it on the new
//! process (one round trip, no certificate exchange), as it would have on
//! the old one.
//!
//! A ticket is the session state sealed with AES-256-GCM under the current
//! key: `key name (16 bytes) || nonce (12) || ciphertext and tag`. Keys are
//! random, rotate every [`ROTATE`] (the previous key still opens tickets
//! until the next rotation, so a ticket lives between one and two periods),
//! and exist only in memory: the predecessor writes them into the
//! socket pair it made for its successor, never to a file or the
//! environment. A process started by the service manager (a start, a
//! restart) makes new ones: its clients' sessions then start afresh.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// How long a key seals new tickets before the next replaces it.
pub const ROTATE: Duration = Duration::from_secs(6 * 3600);
const NAME_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// Produces and opens the session tickets of every TLS connection of the
/// process.
pub struct Tickets {
    keys: RwLock<Keys>,
    random: SystemRandom,
}

struct Keys {
    current: Key,
    previous: Option<Key>,
    /// When `current` began sealing (in this process's clock; a key handed
    /// over keeps its age).
    since: Instant,
}

struct Key {
    name: [u8; NAME_LEN],
    secret: [u8; KEY_LEN],
    aead: LessSafeKey,
}

impl Key {
    fn new(random: &SystemRandom) -> Option<Self> {
        let mut name = [0u8; NAME_LEN];
        let mut secret = [0u8; KEY_LEN];
        random.fill(&mut name).ok()?;
        random.fill(&mut secret).ok()?;
        Self::from_parts(name, secret)
    }

    fn from_parts(name: [u8; NAME_LEN], secret: [u8; KEY_LEN]) -> Option<Self> {
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).ok()?);
        Some(Self { name, secret, aead })
    }

    fn to_hex(&self) -> String {
        hex(&self.name) + &hex(&self.secret)
    }

    fn from_hex(text: &str) -> Option<Self> {
        let bytes = unhex(text)?;
        if bytes.len() != NAME_LEN + KEY_LEN {
            return None;
        }
        Self::from_parts(
            bytes[..NAME_LEN].try_into().ok()?,
            bytes[NAME_LEN..].try_into().ok()?,
        )
    }
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.write_str("Tickets")
    }
}

impl Tickets {
    /// Fresh keys: a process that was handed none.
    pub fn new() -> Option<Self> {
        let random = SystemRandom::new();
        let current = Key::new(&random)?;
        Some(Self {
            keys: RwLock::new(Keys {
                current,
                previous: None,
                since: Instant::now(),
            }),
            random,
        })
    }

    /// The keys a predecessor handed over ([`Tickets::export`]'s text);
    /// None if the text is not that.
    pub fn import(text: &str) -> Option<Self> {
        let mut parts = text.trim().split(':');
        let age = Duration::from_secs(parts.next()?.parse().ok()?);
        let current = Key::from_hex(parts.next()?)?;
        let previous = match parts.next() {
            Some(p) => Some(Key::from_hex(p)?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        let since = Instant::now().checked_sub(age.min(ROTATE))?;
        Some(Self {
            keys: RwLock::new(Keys {
                current,
                previous,
                since,
            }),
            random: SystemRandom::new(),
        })
    }

    /// The keys as one line of text for the successor: the current key's
    /// age in seconds, the current key, the previous one if any.
    pub fn export(&self) -> String {
        let keys = crate::sync::read(&self.keys);
        let mut text = format!(
            "{}:{}",
            keys.since.elapsed().as_secs(),
            keys.current.to_hex()
        );
        if let Some(previous) = &keys.previous {
            text.push(':');
            text.push_str(&previous.to_hex());
        }
        text
    }

    /// Replaces the current key once it has sealed for [`ROTATE`].
    fn rotate_if_due(&self) {
        if crate::sync::read(&self.keys).since.elapsed() < ROTATE {
            return;
        }
        let mut keys = crate::sync::write(&self.keys);
        if keys.since.elapsed() < ROTATE {
            return;
        }
        if let Some(fresh) = Key::new(&self.random) {
            let old = std::mem::replace(&mut keys.current, fresh);
            keys.previous = Some(old);
            keys.since = Instant::now();
        }
    }
}

impl rustls::server::ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        ROTATE.as_secs() as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.rotate_if_due();
        let keys = crate::sync::read(&self.keys);
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut sealed = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + 16);
        sealed.extend_from_slice(&keys.current.name);
        sealed.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        keys.current
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&keys.current.name),
                &mut body,
            )
            .ok()?;
        sealed.extend_from_slice(&body);
        Some(sealed)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let keys = crate::sync::read(&self.keys);
        let key = std::iter::once(&keys.current)
            .chain(keys.previous.as_ref())
            .find(|k| k.name == name)?;
        let mut body = body.to_vec();
        let plain = key
            .aead
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(&key.name),
                &mut body,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn a_ticket_sealed_by_one_process_opens_in_its_successor() {
        let old = Tickets::new().unwrap();
        let ticket = old.encrypt(b"session state").unwrap();
        let new = Tickets::import(&old.export()).unwrap();
        assert_eq!(new.decrypt(&ticket).unwrap(), b"session state");
        // And one of fresh keys does not.
        assert!(Tickets::new().unwrap().decrypt(&ticket).is_none());
    }

    #[test]
    fn a_tampered_ticket_or_a_bad_export_is_refused() {
        let t = Tickets::new().unwrap();
        let mut ticket = t.encrypt(b"state").unwrap();
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(t.decrypt(&ticket).is_none());
        assert!(t.decrypt(b"short").is_none());
        for bad in ["", "x", "5:zz", "5:00", "5:ab:cd:ef"] {
            assert!(Tickets::import(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn after_a_rotation_the_previous_key_still_opens_its_tickets() {
        let t = Tickets::new().unwrap();
        let before = t.encrypt(b"old").unwrap();
        // Handed over at the end of its period: the next ticket rotates.
        let aged = format!(
            "{}:{}",
            ROTATE.as_secs(),
            t.export().split_once(':').unwrap().1
        );
        let next = Tickets::import(&aged).unwrap();
        let after = next.encrypt(b"new").unwrap();
        assert_ne!(before[..NAME_LEN], after[..NAME_LEN], "the key rotated");
        assert_eq!(next.decrypt(&before).unwrap(), b"old");
        assert_eq!(next.decrypt(&after).unwrap(), b"new");
        // The export carries both keys on.
        let again = Tickets::import(&next.export()).unwrap();
        assert_eq!(again.decrypt(&before).unwrap(), b"old");
    }
}
