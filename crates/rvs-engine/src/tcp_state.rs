//! IPVS's TCP state machine (ip_vs_proto_tcp.c: its table, and the stricter one `secure_tcp`
//! switches to) and state timeouts.
//!
//! Connections whose replies never pass the director (direct routing: IPVS's
//! `IP_VS_CONN_F_NOOUTPUT`) follow the table's INPUT-ONLY rows.

use rvs_wire::tcp::Flags;

use crate::flow::Direction;
use crate::spec::Timeouts;
use crate::view::ConnState;

const ES: u8 = ConnState::Established as u8;
const SS: u8 = ConnState::SynSent as u8;
const SR: u8 = ConnState::SynRecv as u8;
const FW: u8 = ConnState::FinWait as u8;
const TW: u8 = ConnState::TimeWait as u8;
const CL: u8 = ConnState::Close as u8;
const CW: u8 = ConnState::CloseWait as u8;
const LA: u8 = ConnState::LastAck as u8;
const LI: u8 = ConnState::Listen as u8;
const SA: u8 = ConnState::SynAck as u8;

/// `[row set][event][current state] -> next state`; row sets INPUT, OUTPUT, INPUT-ONLY; events
/// syn, fin, ack, rst; columns
/// NONE ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK LISTEN SYNACK.
const TABLE: [[[u8; 11]; 4]; 3] = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The table `secure_tcp` puts in force (IPVS's `tcp_states_dos`), laid out as [`TABLE`]: a
/// client's ACK no longer establishes a connection the real server has not answered (SYN_RECV
/// stays until the server's SYN-ACK moves it to SYNACK), and a SYN seen only inbound (direct
/// routing) opens in SYNACK.
const TABLE_SECURE: [[[u8; 11]; 4]; 3] = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// Next TCP state for a segment with `flags` (the TCP flags byte) seen in `dir`; `no_output`
/// selects the INPUT-ONLY rows for input segments (a connection whose replies bypass us);
/// `secure` the `secure_tcp` table. Mirrors `set_tcp_state`: RST beats SYN beats FIN beats
/// ACK; no flag at all gives CLOSE.
pub(crate) fn next_state(
    current: ConnState,
    dir: Direction,
    no_output: bool,
    flags: u8,
    secure: bool,
) -> ConnState {
    let event = if flags & Flags::RST != 0 {
        3
    } else if flags & Flags::SYN != 0 {
        0
    } else if flags & Flags::FIN != 0 {
        1
    } else if flags & Flags::ACK != 0 {
        2
    } else {
        return ConnState::Close;
    };
    let col = current as usize;
    if col >= 11 {
        return current;
    }
    let d = match (dir, no_output) {
        (Direction::Input, false) => 0,
        (Direction::Output, _) => 1,
        (Direction::Input, true) => 2,
    };
    let table = if secure { &TABLE_SECURE } else { &TABLE };
    ConnState::from_u8(table[d][event][col])
}

/// IPVS's TCP transition table as data, for data planes that run it elsewhere (rvs-bpf):
/// `[INPUT, OUTPUT, INPUT-ONLY][syn, fin, ack, rst][state]`, states numbered as [`ConnState`]
/// (the 11 TCP states); read it with [`next_state`]'s precedence (RST, SYN, FIN, ACK; no flag
/// gives CLOSE).
pub fn tcp_transitions() -> [[[u8; 11]; 4]; 3] {
    TABLE
}

/// The `secure_tcp` transition table (IPVS's `tcp_states_dos`), laid out as
/// [`tcp_transitions`].
pub fn tcp_transitions_secure() -> [[[u8; 11]; 4]; 3] {
    TABLE_SECURE
}

/// The timeout of every [`ConnState`] in milliseconds (indexed by `state as usize`), for data
/// planes that run the state machine elsewhere (rvs-bpf).
pub fn state_timeouts_ms(t: Timeouts) -> Vec<u32> {
    TimeoutTable::new(t).ms.to_vec()
}

/// Number of [`ConnState`] values.
const STATES: usize = ConnState::SctpClosed as usize + 1;

/// Timeouts in milliseconds per state, indexed by `ConnState as usize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeoutTable {
    ms: [u32; STATES],
}

impl TimeoutTable {
    /// IPVS defaults with `tcp`, `tcpfin`, `udp` applied (SCTP's are IPVS's fixed defaults).
    pub(crate) fn new(t: Timeouts) -> Self {
        let s = |secs: u32| secs.saturating_mul(1000);
        let mut ms = [0u32; STATES];
        ms[ConnState::None as usize] = s(2);
        ms[ConnState::Established as usize] = s(t.tcp);
        ms[ConnState::SynSent as usize] = s(120);
        ms[ConnState::SynRecv as usize] = s(60);
        ms[ConnState::FinWait as usize] = s(t.tcpfin);
        ms[ConnState::TimeWait as usize] = s(120);
        ms[ConnState::Close as usize] = s(10);
        ms[ConnState::CloseWait as usize] = s(60);
        ms[ConnState::LastAck as usize] = s(30);
        ms[ConnState::Listen as usize] = s(120);
        ms[ConnState::SynAck as usize] = s(120);
        ms[ConnState::Udp as usize] = s(t.udp);
        let sctp = crate::sctp_state::SCTP_BASE as usize;
        for (i, secs) in crate::sctp_state::TIMEOUTS_S.into_iter().enumerate() {
            ms[sctp + i] = s(secs);
        }
        TimeoutTable { ms }
    }

    /// Timeout of a state in milliseconds.
    pub(crate) fn of(&self, state: ConnState) -> u64 {
        self.ms[state as usize] as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnState::*;
    use Direction::*;

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;

    #[test]
    fn three_way_handshake_and_close() {
        let steps = [
            (None, Input, SYN, SynRecv),
            (SynRecv, Output, SYN | ACK, SynRecv),
            (SynRecv, Input, ACK, Established),
            (Established, Input, ACK | 0x08, Established),
            (Established, Input, FIN | ACK, CloseWait),
            (CloseWait, Output, FIN | ACK, TimeWait),
            (TimeWait, Input, ACK, TimeWait),
            (Established, Output, FIN | ACK, FinWait),
            (FinWait, Input, FIN | ACK, TimeWait),
            (Established, Input, RST, Close),
            (SynRecv, Output, RST, Close),
            (Established, Input, 0, Close),
            (TimeWait, Input, SYN, SynRecv),
            // An ACK without a connection (sloppy_tcp, a takeover) is ESTABLISHED at once.
            (None, Input, ACK, Established),
        ];
        for (from, dir, flags, to) in steps {
            assert_eq!(
                next_state(from, dir, false, flags, false),
                to,
                "{from:?} {dir:?} {flags:#x}"
            );
        }
    }

    #[test]
    fn input_only_rows() {
        let steps = [
            (None, SYN, SynRecv),
            (SynRecv, ACK, Established),
            (Established, ACK | 0x08, Established),
            (Established, FIN | ACK, FinWait),
            (FinWait, ACK, FinWait),
            (FinWait, FIN | ACK, FinWait),
            (SynRecv, FIN, TimeWait),
            (SynRecv, RST, SynRecv),
            (SynAck, RST, Close),
            (Established, RST, Close),
            (None, ACK, Established),
            (TimeWait, SYN, SynRecv),
            (LastAck, ACK, Close),
            (Established, 0, Close),
        ];
        for (from, flags, to) in steps {
            assert_eq!(
                next_state(from, Input, true, flags, false),
                to,
                "{from:?} {flags:#x}"
            );
        }
        // Output segments use the OUTPUT rows whatever the flag says.
        assert_eq!(next_state(None, Output, true, SYN | ACK, false), SynSent);
    }

    #[test]
    fn secure_tcp_waits_for_the_real_server() {
        let secure = |from, dir, flags| next_state(from, dir, false, flags, true);
        // A client's SYN and ACK alone (a spoofed handshake) never reach ESTABLISHED.
        assert_eq!(secure(None, Input, SYN), SynRecv);
        assert_eq!(secure(SynRecv, Input, ACK), SynRecv);
        // The real server's SYN-ACK moves it to SYNACK, its next segment to ESTABLISHED.
        assert_eq!(secure(SynRecv, Output, SYN | ACK), SynAck);
        assert_eq!(secure(SynAck, Input, ACK), SynAck);
        assert_eq!(secure(SynAck, Output, ACK), Established);
        assert_eq!(secure(SynAck, Input, FIN | ACK), SynAck);
        assert_eq!(secure(SynAck, Input, RST), Close);
        // Direct routing: a SYN opens in SYNACK, an ACK establishes.
        assert_eq!(next_state(None, Input, true, SYN, true), SynAck);
        assert_eq!(next_state(SynAck, Input, true, ACK, true), Established);
        // The tables differ only where IPVS's do.
        let diffs = TABLE
            .iter()
            .flatten()
            .flatten()
            .zip(TABLE_SECURE.iter().flatten().flatten())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diffs, 15);
    }

    #[test]
    fn timeouts_table() {
        let t = TimeoutTable::new(Timeouts {
            tcp: 5,
            tcpfin: 6,
            udp: 7,
        });
        assert_eq!(t.of(Established), 5000);
        assert_eq!(t.of(FinWait), 6000);
        assert_eq!(t.of(Udp), 7000);
        assert_eq!(t.of(SynRecv), 60_000);
        assert_eq!(t.of(TimeWait), 120_000);
        assert_eq!(t.of(Close), 10_000);
        assert_eq!(t.of(SctpNone), 2_000);
        assert_eq!(t.of(SctpInit1), 4_000);
        assert_eq!(t.of(SctpCookieEchoed), 61_000);
        assert_eq!(t.of(SctpEstablished), 900_000);
        assert_eq!(t.of(SctpRejected), 4_000);
        assert_eq!(t.of(SctpClosed), 61_000);
    }
}
