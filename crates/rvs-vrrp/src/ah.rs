//! keepalived's `auth_type AH`: VRRPv2 over IPv4 behind an IPsec authentication header
//! (RFC 2402) whose integrity check value is HMAC-MD5 (RFC 2104) truncated to 96 bits.
//!
//! What keepalived does, and so what a peer must do to be accepted by it:
//! - the HMAC key is the `auth_pass`, first 8 bytes, zero padded (always 8 bytes long);
//! - the HMAC covers the whole datagram (IP header, AH header, VRRP message) with the ICV
//!   field zeroed and the IP fields that may change in transit zeroed: TOS, flags/fragment
//!   offset and header checksum, and the TTL too when unicast peers are configured;
//! - the SPI is the sender's IPv4 address, and a receiver rejects a mismatch;
//! - one sequence counter per instance serves both directions: a received advert must carry a
//!   number above the counter (which it then becomes), and each sent advert takes the counter
//!   plus one. A new master therefore numbers on from what its peers last sent.
//!
//! [`AhSession`] is that per-instance state; it builds whole datagrams for a raw socket with
//! `IP_HDRINCL` and checks received ones. No I/O.

use std::net::Ipv4Addr;

use hmac::{Hmac, Mac};
use md5::Md5;
use rvs_wire::ipv4::{self, Packet};

use crate::codec::{auth_key, AUTH_LEN, IPPROTO_AH, IPPROTO_VRRP, VRRP_TTL};

/// Length of the AH header keepalived sends: 12 fixed bytes and a 96-bit ICV.
pub const AH_LEN: usize = 24;
/// The AH payload length field: the header in 32-bit words, minus 2.
const AH_PAYLOAD_LEN: u8 = (AH_LEN / 4 - 2) as u8;
/// Length of the ICV (HMAC-MD5-96).
const ICV_LEN: usize = 12;
/// Where the ICV sits in the AH header.
const ICV_AT: usize = 12;
/// The IPv4 header rvs sends (no options).
const IP_LEN: usize = 20;
/// TOS keepalived sends adverts with (internetwork control).
const TOS_NETWORK_CONTROL: u8 = 0xc0;

/// Why a received AH datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AhError {
    /// Too short for its IPv4 and AH headers, or lengths that do not add up.
    #[error("truncated IPv4/AH datagram")]
    Truncated,
    /// The IP protocol is not AH, or AH does not carry VRRP.
    #[error("not an AH datagram carrying VRRP")]
    NotVrrp,
    /// The AH payload length field is not keepalived's 96-bit ICV layout.
    #[error("AH payload length {0}, expected 4")]
    PayloadLength(u8),
    /// The ICV does not match: another password, or the packet changed on the way.
    #[error("AH ICV mismatch (bad password or altered packet)")]
    Icv,
    /// The SPI is not the sender's address.
    #[error("AH SPI {spi:#010x} is not the source address {src}")]
    Spi {
        /// The SPI received.
        spi: u32,
        /// The IP source.
        src: Ipv4Addr,
    },
    /// The sequence number was not above the last one seen or sent (a replay).
    #[error("AH sequence number {got} not above {last}")]
    Replay {
        /// The number received.
        got: u32,
        /// The counter it had to exceed.
        last: u32,
    },
}

/// One instance's AH state: the key and the shared sequence counter.
#[derive(Clone)]
pub struct AhSession {
    key: [u8; AUTH_LEN],
    seq: u32,
    ip_id: u16,
}

impl std::fmt::Debug for AhSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AhSession")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl AhSession {
    /// A session keyed with `auth_pass` as keepalived keys it (first 8 bytes, zero padded).
    pub fn new(password: &str) -> AhSession {
        AhSession {
            key: auth_key(password),
            seq: 0,
            ip_id: 0,
        }
    }

    /// The sequence counter (last number sent or accepted).
    pub fn sequence(&self) -> u32 {
        self.seq
    }

    /// Builds the IPv4 datagram carrying `vrrp` (a v2 advert with auth type 2, checksummed)
    /// from `src` to `dst`: IP header (TOS 0xc0, TTL 255, protocol 51, checksum filled), AH
    /// header with the next sequence number and the ICV, then the advert. `unicast` says
    /// whether the instance has unicast peers (keepalived then leaves the TTL out of the ICV).
    /// Empty if the datagram would be longer than IPv4 allows (no advert is).
    pub fn seal(&mut self, src: Ipv4Addr, dst: Ipv4Addr, vrrp: &[u8], unicast: bool) -> Vec<u8> {
        self.seq = self.seq.saturating_add(1);
        // keepalived never sends IP ID 0 (the kernel would fill one in, outside the ICV).
        self.ip_id = self.ip_id.wrapping_add(1).max(1);
        let total = IP_LEN + AH_LEN + vrrp.len();
        let mut d = vec![0; IP_LEN];
        let ip = ipv4::Repr {
            src_addr: src.octets(),
            dst_addr: dst.octets(),
            protocol: IPPROTO_AH,
            payload_len: (AH_LEN + vrrp.len()) as u16,
            ttl: VRRP_TTL,
            dscp_ecn: TOS_NETWORK_CONTROL,
            ident: self.ip_id,
            dont_frag: false,
        };
        // Only a datagram longer than IPv4 allows fails, and an advert is far shorter.
        if ip.emit(&mut d).is_err() {
            return Vec::new();
        }
        d.reserve(total - IP_LEN);
        d.extend_from_slice(&[IPPROTO_VRRP, AH_PAYLOAD_LEN, 0, 0]);
        d.extend_from_slice(&src.octets());
        d.extend_from_slice(&self.seq.to_be_bytes());
        d.extend_from_slice(&[0; ICV_LEN]);
        d.extend_from_slice(vrrp);
        // The ICV counts the header checksum as zero, so it may be filled in first.
        let icv = self.icv(&d, IP_LEN, unicast);
        d[IP_LEN + ICV_AT..IP_LEN + ICV_AT + ICV_LEN].copy_from_slice(&icv);
        d
    }

    /// Checks a received IPv4 datagram (header included, as a raw socket delivers it): the
    /// ICV, the SPI against the source, and the sequence number against the counter, which
    /// it then advances. Returns where the VRRP message starts.
    pub fn open(&mut self, datagram: &[u8], unicast: bool) -> Result<usize, AhError> {
        let ip = Packet::new_checked(datagram).map_err(|_| AhError::Truncated)?;
        let ihl = ip.header_len();
        if usize::from(ip.total_len()) != datagram.len() || datagram.len() < ihl + AH_LEN {
            return Err(AhError::Truncated);
        }
        let ah = &datagram[ihl..ihl + AH_LEN];
        if ip.protocol() != IPPROTO_AH || ah[0] != IPPROTO_VRRP {
            return Err(AhError::NotVrrp);
        }
        if ah[1] != AH_PAYLOAD_LEN {
            return Err(AhError::PayloadLength(ah[1]));
        }
        let icv = self.icv(datagram, ihl, unicast);
        if icv[..] != ah[ICV_AT..ICV_AT + ICV_LEN] {
            return Err(AhError::Icv);
        }
        let src = ip.src_addr();
        let spi = u32::from_be_bytes([ah[4], ah[5], ah[6], ah[7]]);
        if spi != u32::from(src) {
            return Err(AhError::Spi { spi, src });
        }
        let got = u32::from_be_bytes([ah[8], ah[9], ah[10], ah[11]]);
        if got <= self.seq {
            return Err(AhError::Replay {
                got,
                last: self.seq,
            });
        }
        self.seq = got;
        Ok(ihl + AH_LEN)
    }

    /// HMAC-MD5-96 of `datagram` with the mutable IP fields and the ICV zeroed (the AH header
    /// starts at `ah_at`).
    fn icv(&self, datagram: &[u8], ah_at: usize, unicast: bool) -> [u8; ICV_LEN] {
        let mut ip = datagram[..ah_at].to_vec();
        ip[1] = 0; // TOS
        ip[6] = 0; // flags and fragment offset
        ip[7] = 0;
        ip[10] = 0; // header checksum
        ip[11] = 0;
        if unicast {
            ip[8] = 0; // TTL
        }
        let mut mac = <Hmac<Md5> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts a key of any length");
        mac.update(&ip);
        mac.update(&datagram[ah_at..ah_at + ICV_AT]);
        mac.update(&[0; ICV_LEN]);
        mac.update(&datagram[ah_at + AH_LEN..]);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; ICV_LEN];
        out.copy_from_slice(&full[..ICV_LEN]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Advert, Auth, IpContext, Version};
    use rvs_wire::checksum;
    use std::net::IpAddr;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    fn advert() -> Vec<u8> {
        let a = Advert {
            version: Version::V2,
            vrid: 51,
            priority: 150,
            interval: 1,
            auth: Auth::Ah,
            addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100))],
        };
        a.emit(&IpContext {
            src: SRC.into(),
            dst: GROUP.into(),
        })
        .expect("emit")
    }

    #[test]
    fn sealed_datagram_opens_with_the_same_password() {
        let mut tx = AhSession::new("s3cret");
        let mut rx = AhSession::new("s3cret");
        let msg = advert();
        let d = tx.seal(SRC, GROUP, &msg, false);
        assert_eq!(d.len(), IP_LEN + AH_LEN + msg.len());
        assert_eq!(d[9], IPPROTO_AH);
        assert_eq!(
            &d[IP_LEN + 4..IP_LEN + 8],
            &SRC.octets(),
            "SPI is the source"
        );
        assert_eq!(
            checksum::fold(checksum::add_bytes(0, &d[..IP_LEN])),
            0xffff,
            "IP header checksum"
        );
        assert_eq!(rx.open(&d, false), Ok(IP_LEN + AH_LEN));
        assert_eq!(&d[IP_LEN + AH_LEN..], &msg[..]);
        assert_eq!(rx.sequence(), 1);
    }

    #[test]
    fn mutable_fields_do_not_count_but_others_do() {
        let mut tx = AhSession::new("pw");
        let d = tx.seal(SRC, GROUP, &advert(), false);
        let mut changed = d.clone();
        changed[1] = 0x10; // TOS
        changed[6] = 0x40; // DF
        changed[10] ^= 0xff; // checksum
        assert!(AhSession::new("pw").open(&changed, false).is_ok());
        let mut ttl = d.clone();
        ttl[8] = 64;
        assert_eq!(AhSession::new("pw").open(&ttl, false), Err(AhError::Icv));
        assert!(
            AhSession::new("pw").open(&ttl, true).is_err(),
            "sealed with TTL counted"
        );
        let mut prio = d.clone();
        prio[IP_LEN + AH_LEN + 2] = 200;
        assert_eq!(AhSession::new("pw").open(&prio, false), Err(AhError::Icv));
    }

    #[test]
    fn unicast_leaves_the_ttl_out() {
        let mut tx = AhSession::new("pw");
        let peer = Ipv4Addr::new(10, 77, 0, 2);
        let mut d = tx.seal(SRC, peer, &advert(), true);
        d[8] = 63; // routed on the way
        assert!(AhSession::new("pw").open(&d, true).is_ok());
    }

    #[test]
    fn wrong_password_spi_and_replays_are_rejected() {
        let mut tx = AhSession::new("right");
        let d = tx.seal(SRC, GROUP, &advert(), false);
        assert_eq!(AhSession::new("wrong").open(&d, false), Err(AhError::Icv));
        // Only the first 8 bytes of the password count, as in keepalived.
        assert!(AhSession::new("right\0\0\0ignored").open(&d, false).is_ok());

        let mut rx = AhSession::new("right");
        assert!(rx.open(&d, false).is_ok());
        assert_eq!(rx.open(&d, false), Err(AhError::Replay { got: 1, last: 1 }));

        // A SPI other than the source, resealed so the ICV is right.
        let mut liar = AhSession::new("right");
        let mut forged = liar.seal(SRC, GROUP, &advert(), false);
        forged[IP_LEN + 4..IP_LEN + 8].copy_from_slice(&[1, 2, 3, 4]);
        let icv = liar.icv(&forged, IP_LEN, false);
        forged[IP_LEN + ICV_AT..IP_LEN + ICV_AT + ICV_LEN].copy_from_slice(&icv);
        assert!(matches!(
            AhSession::new("right").open(&forged, false),
            Err(AhError::Spi { .. })
        ));
    }

    #[test]
    fn the_counter_is_shared_between_directions() {
        let mut a = AhSession::new("pw");
        let mut b = AhSession::new("pw");
        for _ in 0..5 {
            let d = a.seal(SRC, GROUP, &advert(), false);
            b.open(&d, false).expect("accepted");
        }
        // b becomes master: it numbers on from 5, so a (whose counter is 5) accepts it.
        let d = b.seal(Ipv4Addr::new(10, 77, 0, 2), GROUP, &advert(), false);
        assert_eq!(a.open(&d, false), Ok(IP_LEN + AH_LEN));
        assert_eq!(a.sequence(), 6);
    }

    #[test]
    fn short_and_foreign_datagrams_are_errors() {
        let mut rx = AhSession::new("pw");
        assert_eq!(rx.open(&[], false), Err(AhError::Truncated));
        assert_eq!(rx.open(&[0x45; 30], false), Err(AhError::Truncated));
        let mut d = AhSession::new("pw").seal(SRC, GROUP, &advert(), false);
        d[9] = IPPROTO_VRRP;
        assert_eq!(rx.open(&d, false), Err(AhError::NotVrrp));
    }

    proptest::proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let _ = AhSession::new("pw").open(&bytes, false);
        }
    }

    /// The bytes the hand-written IPv4 header produced before rvs-wire's `ipv4::Repr` built it.
    #[test]
    fn sealed_bytes_are_unchanged() {
        let mut tx = AhSession::new("pw");
        let d = tx.seal(SRC, GROUP, &[0x21, 1, 2, 3], true);
        let want: [u8; 48] = [
            69, 192, 0, 48, 0, 1, 0, 0, 255, 51, 208, 121, 10, 77, 0, 1, 224, 0, 0, 18, 112, 4, 0,
            0, 10, 77, 0, 1, 0, 0, 0, 1, 158, 166, 57, 194, 56, 47, 86, 42, 115, 72, 21, 187, 33,
            1, 2, 3,
        ];
        assert_eq!(d, want);
    }
}
