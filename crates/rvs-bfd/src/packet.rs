//! The BFD control packet (RFC 5880 section 4.1) without authentication: 24 bytes.
//!
//! ```text
//!  0: Vers(3) Diag(5) | 1: Sta(2) P F C A D M | 2: Detect Mult | 3: Length
//!  4: My Discriminator | 8: Your Discriminator | 12: Desired Min TX Interval (us)
//! 16: Required Min RX Interval (us) | 20: Required Min Echo RX Interval (us)
//! ```

/// The UDP destination port of single-hop control packets (RFC 5881).
pub const BFD_CONTROL_PORT: u16 = 3784;
/// The TTL (hop limit) single-hop packets are sent with and must arrive with (RFC 5881
/// section 5, GTSM).
pub const BFD_TTL: u8 = 255;
/// The length of a control packet without authentication.
pub const PACKET_LEN: usize = 24;

const VERSION: u8 = 1;
const F_POLL: u8 = 0x20;
const F_FINAL: u8 = 0x10;
const F_CPI: u8 = 0x08;
const F_AUTH: u8 = 0x04;
const F_DEMAND: u8 = 0x02;
const F_MULTIPOINT: u8 = 0x01;

/// A session state (the Sta field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// AdminDown (0).
    AdminDown,
    /// Down (1).
    Down,
    /// Init (2).
    Init,
    /// Up (3).
    Up,
}

impl State {
    /// The state of a two-bit field value.
    pub fn from_bits(bits: u8) -> State {
        match bits & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// The two-bit field value.
    pub fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The name BFD implementations print: `AdminDown`, `Down`, `Init`, `Up`.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

/// A diagnostic code (the Diag field, RFC 5880 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Diag(pub u8);

impl Diag {
    /// No diagnostic.
    pub const NONE: Diag = Diag(0);
    /// Control detection time expired.
    pub const EXPIRED: Diag = Diag(1);
    /// Neighbor signaled session down.
    pub const NEIGHBOR_DOWN: Diag = Diag(3);
    /// Administratively down.
    pub const ADMIN_DOWN: Diag = Diag(7);

    /// The RFC's name of the code.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "No Diagnostic",
            1 => "Control Detection Time Expired",
            2 => "Echo Function Failed",
            3 => "Neighbor Signaled Session Down",
            4 => "Forwarding Plane Reset",
            5 => "Path Down",
            6 => "Concatenated Path Down",
            7 => "Administratively Down",
            8 => "Reverse Concatenated Path Down",
            _ => "Unknown",
        }
    }
}

/// Why a received packet is discarded (the checks of RFC 5880 section 6.8.6 that need no
/// session).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than a control packet.
    #[error("{0} bytes, shorter than a BFD control packet")]
    Short(usize),
    /// A version other than 1.
    #[error("version {0}, not 1")]
    Version(u8),
    /// The Length field is below the minimum or above the bytes received.
    #[error("length field {field} with {got} bytes received")]
    Length {
        /// The Length field.
        field: u8,
        /// Bytes received.
        got: usize,
    },
    /// Detect Mult is zero.
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    /// The Multipoint bit is set.
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator 0")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero in a state other than Down or AdminDown.
    #[error("your discriminator 0 in state {}", .0.name())]
    ZeroYourDiscriminator(State),
    /// Authentication is present (not configured here).
    #[error("authentication present, none configured")]
    Authenticated,
}

/// A BFD control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    /// Diagnostic.
    pub diag: Diag,
    /// Sender's state.
    pub state: State,
    /// P: a Poll Sequence is in progress.
    pub poll: bool,
    /// F: the answer to a Poll.
    pub final_: bool,
    /// C: control plane independent.
    pub control_plane_independent: bool,
    /// D: demand mode.
    pub demand: bool,
    /// Detection time multiplier.
    pub detect_mult: u8,
    /// The sender's discriminator.
    pub my_discriminator: u32,
    /// The receiver's discriminator as the sender knows it (0 if unknown).
    pub your_discriminator: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, microseconds.
    pub required_min_echo_rx_us: u32,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl ControlPacket {
    /// Parses and checks a received packet (the UDP payload).
    pub fn parse(b: &[u8]) -> Result<ControlPacket, PacketError> {
        if b.len() < PACKET_LEN {
            return Err(PacketError::Short(b.len()));
        }
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let flags = b[1];
        let length = b[3];
        let min = if flags & F_AUTH != 0 { 26 } else { 24 };
        if usize::from(length) < min || usize::from(length) > b.len() {
            return Err(PacketError::Length {
                field: length,
                got: b.len(),
            });
        }
        if flags & F_AUTH != 0 {
            return Err(PacketError::Authenticated);
        }
        if b[2] == 0 {
            return Err(PacketError::ZeroDetectMult);
        }
        if flags & F_MULTIPOINT != 0 {
            return Err(PacketError::Multipoint);
        }
        let p = ControlPacket {
            diag: Diag(b[0] & 0x1f),
            state: State::from_bits(flags >> 6),
            poll: flags & F_POLL != 0,
            final_: flags & F_FINAL != 0,
            control_plane_independent: flags & F_CPI != 0,
            demand: flags & F_DEMAND != 0,
            detect_mult: b[2],
            my_discriminator: be32(b, 4),
            your_discriminator: be32(b, 8),
            desired_min_tx_us: be32(b, 12),
            required_min_rx_us: be32(b, 16),
            required_min_echo_rx_us: be32(b, 20),
        };
        if p.my_discriminator == 0 {
            return Err(PacketError::ZeroMyDiscriminator);
        }
        if p.your_discriminator == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(PacketError::ZeroYourDiscriminator(p.state));
        }
        Ok(p)
    }

    /// The packet's 24 bytes.
    pub fn emit(&self) -> [u8; PACKET_LEN] {
        let mut b = [0u8; PACKET_LEN];
        b[0] = (VERSION << 5) | (self.diag.0 & 0x1f);
        b[1] = (self.state.bits() << 6)
            | if self.poll { F_POLL } else { 0 }
            | if self.final_ { F_FINAL } else { 0 }
            | if self.control_plane_independent {
                F_CPI
            } else {
                0
            }
            | if self.demand { F_DEMAND } else { 0 };
        b[2] = self.detect_mult;
        b[3] = PACKET_LEN as u8;
        b[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ControlPacket {
        ControlPacket {
            diag: Diag::NONE,
            state: State::Up,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 7,
            desired_min_tx_us: 50_000,
            required_min_rx_us: 50_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[test]
    fn the_layout_is_rfc_5880s() {
        let b = sample().emit();
        assert_eq!(b[0], 0x20, "version 1, no diagnostic");
        assert_eq!(b[1], 0xe0, "Up with P");
        assert_eq!(&b[2..4], &[3, 24]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[12..16], &50_000u32.to_be_bytes());
    }

    #[test]
    fn invalid_packets_are_refused_with_their_reason() {
        let good = sample().emit();
        let with = |i: usize, v: u8| {
            let mut b = good;
            b[i] = v;
            ControlPacket::parse(&b)
        };
        assert_eq!(
            ControlPacket::parse(&good[..23]),
            Err(PacketError::Short(23))
        );
        assert_eq!(with(0, 0x40), Err(PacketError::Version(2)));
        assert!(matches!(with(3, 23), Err(PacketError::Length { .. })));
        assert!(matches!(with(3, 30), Err(PacketError::Length { .. })));
        assert_eq!(with(2, 0), Err(PacketError::ZeroDetectMult));
        assert_eq!(with(1, 0xc1), Err(PacketError::Multipoint));
        let mut auth = good.to_vec();
        auth.extend_from_slice(&[1, 2]);
        auth[1] |= 0x04;
        auth[3] = 26;
        assert_eq!(ControlPacket::parse(&auth), Err(PacketError::Authenticated));
        let mut p = sample();
        p.my_discriminator = 0;
        assert_eq!(
            ControlPacket::parse(&p.emit()),
            Err(PacketError::ZeroMyDiscriminator)
        );
        let mut p = sample();
        p.your_discriminator = 0;
        assert_eq!(
            ControlPacket::parse(&p.emit()),
            Err(PacketError::ZeroYourDiscriminator(State::Up))
        );
        p.state = State::Down;
        assert!(
            ControlPacket::parse(&p.emit()).is_ok(),
            "Down may not know it yet"
        );
    }

    proptest! {
        #[test]
        fn emit_then_parse_is_identity(
            diag in 0u8..32, state in 0u8..4, poll: bool, fin: bool, cpi: bool, demand: bool,
            mult in 1u8.., mine in 1u32.., yours: u32, tx: u32, rx: u32, echo: u32,
        ) {
            let state = State::from_bits(state);
            let p = ControlPacket {
                diag: Diag(diag), state, poll, final_: fin, control_plane_independent: cpi,
                demand, detect_mult: mult, my_discriminator: mine,
                your_discriminator: if matches!(state, State::Down | State::AdminDown) { yours } else { yours.max(1) },
                desired_min_tx_us: tx, required_min_rx_us: rx, required_min_echo_rx_us: echo,
            };
            prop_assert_eq!(ControlPacket::parse(&p.emit()), Ok(p));
        }

        #[test]
        fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ControlPacket::parse(&bytes);
        }
    }
}
