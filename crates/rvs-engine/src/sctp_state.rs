//! IPVS's SCTP state machine (ip_vs_proto_sctp.c): for the event a packet stands for (by its
//! first chunk, [`crate::sctp_event`]), the transition table for the INPUT, OUTPUT and
//! INPUT-ONLY directions, and the rules of `sctp_conn_schedule` (only an INIT creates a connection unless `sloppy_sctp`; never an ABORT).
//!
//! The states are IPVS's `IP_VS_SCTP_S_*` in their kernel order, stored in [`ConnState`] from
//! [`SCTP_BASE`] on, so `state - SCTP_BASE` is the number IPVS's sync protocol carries.

use crate::flow::Direction;
use crate::sctp_event::{EV_ABORT, EV_INIT, EV_NONE};
use crate::view::ConnState;

/// `ConnState as u8` of IPVS's `IP_VS_SCTP_S_NONE`; the other SCTP states follow in order.
pub(crate) const SCTP_BASE: u8 = ConnState::SctpNone as u8;
/// Number of SCTP states (`IP_VS_SCTP_S_LAST`).
pub(crate) const SCTP_STATES: usize = 14;

/// Whether a packet with `event` and no connection may create one (`sctp_conn_schedule`): an
/// INIT, or with `sloppy_sctp` any chunk but an ABORT.
pub(crate) fn may_schedule(event: u8, sloppy: bool) -> bool {
    match event {
        EV_INIT => true,
        EV_ABORT | EV_NONE => false,
        _ => sloppy,
    }
}

// IPVS's abbreviations, as indexes relative to SCTP_BASE (NONE, 0, is never a next state).
const I1: u8 = 1;
const IN: u8 = 2;
const CS: u8 = 3;
const CR: u8 = 4;
const CW: u8 = 5;
const CO: u8 = 6;
const CE: u8 = 7;
const ES: u8 = 8;
const SS: u8 = 9;
const SR: u8 = 10;
const SA: u8 = 11;
const RJ: u8 = 12;
const CL: u8 = 13;

/// `sctp_states[direction][event][state]`: directions INPUT, OUTPUT, INPUT-ONLY; events as
/// above; columns NONE INIT1 INIT COOKIE_SENT COOKIE_REPLIED COOKIE_WAIT COOKIE COOKIE_ECHOED
/// ESTABLISHED SHUTDOWN_SENT SHUTDOWN_RECEIVED SHUTDOWN_ACK_SENT REJECTED CLOSED.
const TABLE: [[[u8; SCTP_STATES]; 10]; 3] = [
    // INPUT
    [
        [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL], // DATA
        [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN], // INIT
        [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL], // INIT_ACK
        [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL], // COOKIE_ECHO
        [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL], // COOKIE_ACK
        [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL], // SHUTDOWN
        [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL], // SHUTDOWN_ACK
        [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL], // SHUTDOWN_COMPLETE
        [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL], // ERROR
        [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL], // ABORT
    ],
    // OUTPUT
    [
        [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
        [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
        [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
        [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
        [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
        [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
        [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
        [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
];

/// The next state of an SCTP connection in `current` for a packet with `event` seen in `dir`;
/// `no_output` selects the INPUT-ONLY rows for input packets (direct routing, tunnels, local:
/// replies bypass the director). [`EV_NONE`] and a non-SCTP state leave the state unchanged.
pub(crate) fn next_state(
    current: ConnState,
    dir: Direction,
    no_output: bool,
    event: u8,
) -> ConnState {
    let col = (current as u8).wrapping_sub(SCTP_BASE) as usize;
    let d = match (dir, no_output) {
        (Direction::Input, false) => 0,
        (Direction::Output, _) => 1,
        (Direction::Input, true) => 2,
    };
    match TABLE[d]
        .get(usize::from(event))
        .and_then(|row| row.get(col))
    {
        Some(&s) => ConnState::from_u8(SCTP_BASE + s),
        None => current,
    }
}

/// IPVS's default SCTP timeouts in seconds, by state (`sctp_timeouts[]`): NONE 2, INIT1 4,
/// REJECTED 4, ESTABLISHED 900, every other state IP_VS_SCTP_MAX_RTO (61).
pub(crate) const TIMEOUTS_S: [u32; SCTP_STATES] =
    [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sctp_event::EV_DATA;
    use ConnState::*;
    use Direction::*;

    #[test]
    fn scheduling_rule() {
        assert!(may_schedule(EV_INIT, false));
        assert!(!may_schedule(EV_DATA, false));
        assert!(may_schedule(EV_DATA, true));
        assert!(!may_schedule(EV_ABORT, true));
        assert!(!may_schedule(EV_NONE, true));
    }

    #[test]
    fn association_seen_through_nat() {
        // Client INIT, server INIT_ACK, client COOKIE_ECHO, server COOKIE_ACK, data, then the
        // client shuts down.
        let steps = [
            (SctpNone, Input, EV_INIT, SctpInit1),
            (SctpInit1, Input, EV_INIT, SctpInit),
            (SctpInit1, Output, 2, SctpCookieSent),
            (SctpCookieSent, Input, 3, SctpCookieReplied),
            (SctpCookieReplied, Output, 4, SctpEstablished),
            (SctpEstablished, Input, EV_DATA, SctpEstablished),
            (SctpEstablished, Output, EV_DATA, SctpEstablished),
            (SctpEstablished, Input, 5, SctpShutdownReceived),
            (SctpShutdownReceived, Output, 6, SctpShutdownAckSent),
            (SctpShutdownAckSent, Input, 7, SctpClosed),
            (SctpEstablished, Output, 5, SctpShutdownSent),
            (SctpShutdownSent, Input, 6, SctpClosed),
            (SctpInit1, Output, EV_ABORT, SctpRejected),
            (SctpInit1, Input, EV_ABORT, SctpClosed),
            (SctpClosed, Input, EV_INIT, SctpInit),
            (SctpRejected, Input, EV_INIT, SctpInit),
            (SctpNone, Output, EV_INIT, SctpCookieWait),
            (SctpCookieWait, Input, 2, SctpCookie),
            (SctpCookieWait, Input, EV_ABORT, SctpRejected),
            (SctpCookieEchoed, Input, 8, SctpClosed),
            (SctpEstablished, Input, EV_NONE, SctpEstablished),
        ];
        for (from, dir, e, to) in steps {
            assert_eq!(next_state(from, dir, false, e), to, "{from:?} {dir:?} {e}");
        }
    }

    #[test]
    fn input_only_rows() {
        let steps = [
            (SctpNone, EV_INIT, SctpInit1),
            (SctpInit1, 3, SctpEstablished), // COOKIE_ECHO: the server answered
            (SctpEstablished, EV_DATA, SctpEstablished),
            (SctpEstablished, 5, SctpShutdownReceived),
            (SctpEstablished, 6, SctpClosed),
            (SctpShutdownReceived, 7, SctpClosed),
            (SctpCookieWait, EV_DATA, SctpEstablished),
            (SctpCookieSent, EV_INIT, SctpInit),
            (SctpInit1, EV_ABORT, SctpClosed),
        ];
        for (from, e, to) in steps {
            assert_eq!(next_state(from, Input, true, e), to, "{from:?} {e}");
        }
        // The OUTPUT rows whatever no_output says.
        assert_eq!(next_state(SctpInit1, Output, true, 2), SctpCookieSent);
    }

    #[test]
    fn states_and_names_match_the_kernel_order() {
        let names = [
            "NONE",
            "INIT1",
            "INIT",
            "C-SENT",
            "C-REPLIED",
            "C-WAIT",
            "COOKIE",
            "C-ECHOED",
            "ESTABLISHED",
            "S-SENT",
            "S-RECEIVED",
            "S-ACK-SENT",
            "REJECTED",
            "CLOSED",
        ];
        for (i, name) in names.iter().enumerate() {
            let st = ConnState::from_u8(SCTP_BASE + i as u8);
            assert_eq!(st.name(), *name);
            assert_eq!(st.sctp_index(), Some(i as u8));
        }
        assert_eq!(ConnState::Established.sctp_index(), Option::None);
        // Not an SCTP state, or not an event: unchanged.
        assert_eq!(next_state(Established, Input, false, EV_INIT), Established);
        assert_eq!(next_state(SctpInit, Input, false, 42), SctpInit);
    }
}
