//! IPVS's connection synchronization protocol, version 1 (the kernel's `ip_vs_sync.c`), as a
//! pure codec: [`parse`] a datagram, [`pack`] connection records into datagrams no longer
//! than a maximum length. Nothing here touches a socket.
//!
//! A datagram is an 8-byte header (`struct ip_vs_sync_mesg`: reserved 0, syncid, size,
//! nr_conns, version 1, spare 0) followed by `nr_conns` connection entries (`struct
//! ip_vs_sync_v4` of 36 bytes or `ip_vs_sync_v6` of 72 bytes, then optional parameters as
//! type/length/value), each entry starting on a 4-byte boundary (zero padding between entries,
//! counted in the header's size). All numbers are big-endian.
//!
//! rvs extensions, both of which a kernel backup ignores:
//! - [`OPT_RVS_FNAT_LOCAL`] (0x48): the FULLNAT local address and port of a connection. It has
//!   the kernel's "optional parameter" bit (`IPVS_OPT_F_PARAM`, 0x40) set, so a kernel skips it
//!   (an unknown type without that bit would make it skip the whole connection).
//! - [`Message::ResyncRequest`]: "send me your whole table". Its header has reserved 0 and a
//!   version other than 1, which a kernel reads as a version-0 message with 0 connections.

mod codec;
mod consts;
mod pack;

pub use codec::{emit_conn, parse, Message, ParseError, SeqData, SeqOptions, SyncAddrs, SyncConn};
pub use consts::*;
pub use pack::{pack, resync_request, Packer};
