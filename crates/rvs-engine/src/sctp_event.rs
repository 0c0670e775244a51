//! The event an SCTP packet stands for in IPVS's SCTP state machine (`ip_vs_proto_sctp.c`), by
//! its first chunk: read while parsing, used by `sctp_state`.

use rvs_wire::sctp::{chunk_type, Packet};

/// Events (IPVS's `ipvs_sctp_event_t`): DATA (also SACK, HEARTBEAT(-ACK), ECNE, CWR and every
/// chunk type it does not know), INIT, INIT_ACK, COOKIE_ECHO, COOKIE_ACK, SHUTDOWN, SHUTDOWN_ACK,
/// SHUTDOWN_COMPLETE, ERROR, ABORT.
pub(crate) const EV_DATA: u8 = 0;
/// An INIT chunk first.
pub(crate) const EV_INIT: u8 = 1;
/// An ABORT chunk first (or right after a COOKIE_ECHO / COOKIE_ACK).
pub(crate) const EV_ABORT: u8 = 9;
/// No chunk header in the packet: no event (IPVS leaves the state as it is).
pub(crate) const EV_NONE: u8 = 0xff;

/// The event of a chunk type (IPVS's `sctp_events[]`, DATA beyond it).
fn event_of(t: u8) -> u8 {
    match t {
        chunk_type::INIT => EV_INIT,
        chunk_type::INIT_ACK => 2,
        chunk_type::COOKIE_ECHO => 3,
        chunk_type::COOKIE_ACK => 4,
        chunk_type::SHUTDOWN => 5,
        chunk_type::SHUTDOWN_ACK => 6,
        chunk_type::SHUTDOWN_COMPLETE => 7,
        chunk_type::ERROR => 8,
        chunk_type::ABORT => EV_ABORT,
        _ => EV_DATA,
    }
}

/// The event of an SCTP packet (`set_sctp_state`): its first chunk's type, except that a
/// COOKIE_ECHO or COOKIE_ACK followed by an ABORT counts as the ABORT. [`EV_NONE`] when the
/// first chunk's header is missing.
pub(crate) fn event<T: AsRef<[u8]>>(p: &Packet<T>) -> u8 {
    let Some(first) = p.first_chunk_header() else {
        return EV_NONE;
    };
    let mut t = first.chunk_type;
    if (t == chunk_type::COOKIE_ECHO || t == chunk_type::COOKIE_ACK)
        && usize::from(first.length) >= rvs_wire::sctp::CHUNK_HEADER_LEN
    {
        let next = Packet::<T>::next_chunk_offset(0, first.length);
        if p.chunk_header_at(next)
            .is_some_and(|h| h.chunk_type == chunk_type::ABORT)
        {
            t = chunk_type::ABORT;
        }
    }
    event_of(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(chunks: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 12];
        b.extend_from_slice(chunks);
        b
    }

    fn ev(chunks: &[u8]) -> u8 {
        let b = pkt(chunks);
        event(&Packet::new_checked(&b[..]).unwrap())
    }

    #[test]
    fn events_by_first_chunk() {
        assert_eq!(ev(&[1, 0, 0, 20]), EV_INIT);
        assert_eq!(ev(&[2, 0, 0, 20]), 2);
        assert_eq!(ev(&[0, 3, 0, 17]), EV_DATA);
        assert_eq!(ev(&[3, 0, 0, 16]), EV_DATA); // SACK
        assert_eq!(ev(&[4, 0, 0, 8]), EV_DATA); // HEARTBEAT
        assert_eq!(ev(&[6, 0, 0, 4]), EV_ABORT);
        assert_eq!(ev(&[14, 0, 0, 4]), 7);
        assert_eq!(ev(&[0xc0, 0, 0, 8]), EV_DATA); // FORWARD_TSN: unknown to IPVS
        assert_eq!(ev(&[]), EV_NONE);
        assert_eq!(ev(&[1, 0, 0]), EV_NONE);
        // COOKIE_ECHO (length 5, padded to 8) bundled with an ABORT: the ABORT counts.
        assert_eq!(ev(&[10, 0, 0, 5, 9, 0, 0, 0, 6, 0, 0, 4]), EV_ABORT);
        assert_eq!(ev(&[11, 0, 0, 4, 6, 0, 0, 4]), EV_ABORT);
        assert_eq!(ev(&[11, 0, 0, 4, 0, 0, 0, 4]), 4);
        // Only after a cookie chunk, and only when the next header is there.
        assert_eq!(ev(&[0, 0, 0, 4, 6, 0, 0, 4]), EV_DATA);
        assert_eq!(ev(&[10, 0, 0, 8, 1, 2, 3, 4]), 3);
        assert_eq!(ev(&[10, 0, 0, 2, 6, 0, 0, 4]), 3);
    }
}
