//! Connection IDs that say which process owns a QUIC connection.
//!
//! A QUIC server chooses the connection IDs its clients put in every packet
//! after the first (RFC 9000 §5.1). Every ID this process issues begins with
//! its [`Tag`], four random bytes drawn at its start: a process that
//! receives a datagram for a connection it did not make can tell, from the
//! datagram alone, which earlier process made it, and forward it there
//! (`socket`). The other four bytes are random, so that IDs stay unlinkable
//! on the wire (RFC 9000 §5.1.1).

use std::fmt;
use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};
use quinn_proto::InvalidCid;
use ring::rand::{SecureRandom, SystemRandom};

/// The length of the connection IDs handoff issues: the tag, then random
/// bytes. Eight is what clients choose for their first Initial too, and
/// what quinn's own generator uses.
pub const CID_LEN: usize = 8;

/// Which process issued a connection ID: its first four bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub [u8; 4]);

impl Tag {
    /// A new process's tag; None if the system has no randomness to give.
    pub fn random() -> Option<Self> {
        let mut bytes = [0u8; 4];
        SystemRandom::new().fill(&mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// As written in the hand-off to the successor: eight hex digits.
    pub fn parse(hex: &str) -> Option<Self> {
        if hex.len() != 8 {
            return None;
        }
        let n = u32::from_str_radix(hex, 16).ok()?;
        Some(Self(n.to_be_bytes()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", u32::from_be_bytes(self.0))
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

/// The tag in a datagram's destination connection ID, if it carries one of
/// handoff's length. A short header has the ID right after its first byte
/// (its length is the endpoint's to know); a long header says the length
/// (RFC 9000 §17.2). A client's first Initial carries an ID of its own
/// choosing: its first bytes match an earlier process's tag once in four
/// billion, and such a packet is then forwarded and answered there.
pub fn tag_of(datagram: &[u8]) -> Option<Tag> {
    let first = *datagram.first()?;
    let at = if first & 0x80 != 0 {
        // flags, version (4), DCID length, DCID.
        if *datagram.get(5)? as usize != CID_LEN {
            return None;
        }
        6
    } else {
        1
    };
    let id = datagram.get(at..at + CID_LEN)?;
    Some(Tag([id[0], id[1], id[2], id[3]]))
}

/// quinn's connection ID generator for one process: IDs that begin with its
/// tag. IDs of other tags it refuses ([`ConnectionIdGenerator::validate`]),
/// so a datagram that reached the wrong process is dropped rather than
/// answered with a stateless reset that would end another process's
/// connection.
pub struct TaggedCids {
    tag: Tag,
    random: SystemRandom,
}

impl TaggedCids {
    pub fn new(tag: Tag) -> Self {
        Self {
            tag,
            random: SystemRandom::new(),
        }
    }
}

impl ConnectionIdGenerator for TaggedCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; CID_LEN];
        bytes[..4].copy_from_slice(&self.tag.0);
        // quinn retries on a collision; without randomness (never seen on
        // Linux) the IDs would collide and the connection not start.
        let _ = self.random.fill(&mut bytes[4..]);
        ConnectionId::new(&bytes)
    }

    fn validate(&self, cid: &ConnectionId) -> Result<(), InvalidCid> {
        if cid.len() == CID_LEN && cid[..4] == self.tag.0 {
            Ok(())
        } else {
            Err(InvalidCid)
        }
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_tag_and_other_tags_are_refused() {
        let tag = Tag([1, 2, 3, 4]);
        let mut cids = TaggedCids::new(tag);
        let a = cids.generate_cid();
        let b = cids.generate_cid();
        assert_eq!(&a[..4], &[1, 2, 3, 4]);
        assert_ne!(a, b);
        assert!(cids.validate(&a).is_ok());
        assert!(
            cids.validate(&ConnectionId::new(&[9, 9, 9, 9, 0, 0, 0, 0]))
                .is_err()
        );
        assert!(cids.validate(&ConnectionId::new(&[1, 2, 3, 4])).is_err());
    }

    #[test]
    fn the_tag_is_read_from_short_and_long_headers() {
        let short = [0x40, 1, 2, 3, 4, 5, 6, 7, 8, 0xaa];
        assert_eq!(tag_of(&short), Some(Tag([1, 2, 3, 4])));
        // Initial, version 1, DCID of 8 bytes.
        let long = [0xc0, 0, 0, 0, 1, 8, 9, 8, 7, 6, 5, 4, 3, 2, 0];
        assert_eq!(tag_of(&long), Some(Tag([9, 8, 7, 6])));
        // A DCID of another length is no one's.
        let other = [0xc0, 0, 0, 0, 1, 16, 9, 8, 7, 6, 5, 4, 3, 2];
        assert_eq!(tag_of(&other), None);
        assert_eq!(tag_of(&[0x40, 1, 2]), None);
        assert_eq!(tag_of(&[]), None);
    }

    #[test]
    fn tags_are_written_and_read_as_hex() {
        let tag = Tag([0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(tag.to_string(), "deadbeef");
        assert_eq!(Tag::parse("deadbeef"), Some(tag));
        assert_eq!(Tag::parse("dead"), None);
        assert_eq!(Tag::parse("nothexxx"), None);
    }
}
