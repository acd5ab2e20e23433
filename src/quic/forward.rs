//! A datagram forwarded from the process that reads the QUIC socket to the
//! earlier process whose connection it belongs to, over a unix datagram
//! socket pair made at the reload: both ends of the format here.
//!
//! What the earlier process needs to handle it as if it had read it from the
//! socket itself: the client's address (where answers go), the local address
//! it was sent to (answers leave from it), its ECN bits, and the datagram.
//! A frame is a fixed header of [`HEADER`] bytes, then the datagram.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Bytes before the datagram.
pub const HEADER: usize = 40;
const VERSION: u8 = 1;

/// What came with a datagram from the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub from: SocketAddr,
    pub to_ip: Option<IpAddr>,
    /// The ECN codepoint's two bits, if there were any.
    pub ecn: Option<u8>,
}

/// Writes `meta` and `datagram` as one frame into `out` (cleared first).
pub fn encode(meta: &Meta, datagram: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(HEADER + datagram.len());
    out.push(VERSION);
    out.push(meta.ecn.map_or(0xff, |e| e & 0b11));
    out.extend_from_slice(&meta.from.port().to_be_bytes());
    push_ip(out, Some(meta.from.ip()));
    push_ip(out, meta.to_ip);
    debug_assert_eq!(out.len(), HEADER);
    out.extend_from_slice(datagram);
}

/// The metadata and datagram of a frame; None for a frame that is not one
/// (a version this build does not know, a short read).
pub fn decode(frame: &[u8]) -> Option<(Meta, &[u8])> {
    if frame.len() < HEADER || frame[0] != VERSION {
        return None;
    }
    let ecn = (frame[1] != 0xff).then_some(frame[1] & 0b11);
    let port = u16::from_be_bytes([frame[2], frame[3]]);
    let from = read_ip(&frame[4..22])?;
    let to_ip = read_ip(&frame[22..40]);
    Some((
        Meta {
            from: SocketAddr::new(from, port),
            to_ip,
            ecn,
        },
        &frame[HEADER..],
    ))
}

/// An address as a family byte (0 none, 4, 6), then 16 bytes (an IPv4
/// address in the first four), then a pad byte.
fn push_ip(out: &mut Vec<u8>, ip: Option<IpAddr>) {
    let mut bytes = [0u8; 18];
    match ip {
        None => {}
        Some(IpAddr::V4(v4)) => {
            bytes[0] = 4;
            bytes[1..5].copy_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            bytes[0] = 6;
            bytes[1..17].copy_from_slice(&v6.octets());
        }
    }
    out.extend_from_slice(&bytes);
}

fn read_ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes[0] {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[1], bytes[2], bytes[3], bytes[4],
        ))),
        6 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[1..17]);
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_carries_the_addresses_the_ecn_bits_and_the_datagram() {
        let mut out = Vec::new();
        for meta in [
            Meta {
                from: "192.0.2.7:4433".parse().unwrap(),
                to_ip: Some("127.0.0.1".parse().unwrap()),
                ecn: Some(0b10),
            },
            Meta {
                from: "[2001:db8::1]:65535".parse().unwrap(),
                to_ip: None,
                ecn: None,
            },
        ] {
            encode(&meta, b"quic bytes", &mut out);
            let (back, datagram) = decode(&out).unwrap();
            assert_eq!(back, meta);
            assert_eq!(datagram, b"quic bytes");
        }
        assert!(decode(&out[..HEADER - 1]).is_none());
        out[0] = 2;
        assert!(decode(&out).is_none());
    }
}
