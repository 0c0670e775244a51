//! Numbers of the sync protocol, as the kernel defines them.

/// The default multicast group (`IP_VS_SYNC_GROUP`, 224.0.0.81).
pub const DEFAULT_GROUP: [u8; 4] = [224, 0, 0, 81];
/// The default UDP port (`IP_VS_SYNC_PORT`).
pub const DEFAULT_PORT: u16 = 8848;
/// The protocol version this crate speaks (`SYNC_PROTO_VER`).
pub const SYNC_PROTO_VER: u8 = 1;
/// Length of the message header (`struct ip_vs_sync_mesg`).
pub const HEADER_LEN: usize = 8;
/// Length of an IPv4 connection entry without options (`struct ip_vs_sync_v4`).
pub const CONN_V4_LEN: usize = 36;
/// Length of an IPv6 connection entry without options (`struct ip_vs_sync_v6`).
pub const CONN_V6_LEN: usize = 72;
/// Entry type bit: IPv6 addresses (`STYPE_F_INET6`).
pub const STYPE_F_INET6: u8 = 1;
/// `ver_size`: the low 12 bits are the entry's size (`SVER_MASK`), the top 4 its version (0).
pub const SVER_MASK: u16 = 0x0fff;
/// Option: TCP sequence adjustment data (`IPVS_OPT_SEQ_DATA`), 24 bytes.
pub const OPT_SEQ_DATA: u8 = 1;
/// Option: persistence-engine data (`IPVS_OPT_PE_DATA`), at most 255 bytes.
pub const OPT_PE_DATA: u8 = 2;
/// Option: persistence-engine name (`IPVS_OPT_PE_NAME`), at most 16 bytes.
pub const OPT_PE_NAME: u8 = 3;
/// Option type bit: the parameter is optional; receivers skip unknown ones (`IPVS_OPT_F_PARAM`).
pub const OPT_F_PARAM: u8 = 0x40;
/// rvs extension option: FULLNAT local address and port (4 or 16 address bytes, then the
/// port). Optional, so a kernel receiver skips it.
pub const OPT_RVS_FNAT_LOCAL: u8 = OPT_F_PARAM | 8;
/// Length of the sequence option's data (`struct ip_vs_sync_conn_options`).
pub const SEQ_OPTIONS_LEN: usize = 24;
/// Longest persistence-engine data (`IP_VS_PEDATA_MAXLEN`).
pub const PEDATA_MAXLEN: usize = 255;
/// Longest persistence-engine name (`IP_VS_PENAME_MAXLEN`).
pub const PENAME_MAXLEN: usize = 16;
/// Version byte of the rvs resync request ('R'; a kernel handles any version but 1 as a
/// version-0 message, whose first byte, 0 here, is its connection count).
pub const RVS_RESYNC_VERSION: u8 = b'R';
/// Payload after the header of an rvs resync request.
pub const RVS_RESYNC_MAGIC: [u8; 4] = *b"RVS?";

/// Connection flag: the forwarding method mask (`IP_VS_CONN_F_FWD_MASK`).
pub const F_FWD_MASK: u32 = 0x0007;
/// Forwarding method: NAT (`IP_VS_CONN_F_MASQ`).
pub const F_MASQ: u32 = 0x0000;
/// Forwarding method: local node (`IP_VS_CONN_F_LOCALNODE`).
pub const F_LOCALNODE: u32 = 0x0001;
/// Forwarding method: tunnelling (`IP_VS_CONN_F_TUNNEL`).
pub const F_TUNNEL: u32 = 0x0002;
/// Forwarding method: direct routing (`IP_VS_CONN_F_DROUTE`).
pub const F_DROUTE: u32 = 0x0003;
/// Forwarding method: FULLNAT (not in mainline; the value Alibaba's FULLNAT IPVS uses).
pub const F_FULLNAT: u32 = 0x0005;
/// The connection was created by sync (`IP_VS_CONN_F_SYNC`).
pub const F_SYNC: u32 = 0x0020;
/// Hashed in the table (`IP_VS_CONN_F_HASHED`; never sent).
pub const F_HASHED: u32 = 0x0040;
/// No output packets (`IP_VS_CONN_F_NOOUTPUT`).
pub const F_NOOUTPUT: u32 = 0x0080;
/// Counted as inactive (`IP_VS_CONN_F_INACTIVE`).
pub const F_INACTIVE: u32 = 0x0100;
/// Outgoing sequence adjustment (`IP_VS_CONN_F_OUT_SEQ`).
pub const F_OUT_SEQ: u32 = 0x0200;
/// Incoming sequence adjustment (`IP_VS_CONN_F_IN_SEQ`).
pub const F_IN_SEQ: u32 = 0x0400;
/// Either sequence adjustment (`IP_VS_CONN_F_SEQ_MASK`).
pub const F_SEQ_MASK: u32 = 0x0600;
/// No client port (`IP_VS_CONN_F_NO_CPORT`).
pub const F_NO_CPORT: u32 = 0x0800;
/// A persistence template (`IP_VS_CONN_F_TEMPLATE`).
pub const F_TEMPLATE: u32 = 0x1000;
/// One-packet scheduling (`IP_VS_CONN_F_ONE_PACKET`).
pub const F_ONE_PACKET: u32 = 0x2000;
/// Flags a backup keeps from a synced entry (`IP_VS_CONN_F_BACKUP_MASK`).
pub const F_BACKUP_MASK: u32 =
    F_FWD_MASK | F_NOOUTPUT | F_INACTIVE | F_SEQ_MASK | F_NO_CPORT | F_TEMPLATE;

/// The kernel's defaults for `sync_threshold` and `sync_period`: a connection is synced when
/// its incoming packet count modulo the period equals the threshold.
pub const DEFAULT_SYNC_THRESHOLD: u32 = 3;
/// See [`DEFAULT_SYNC_THRESHOLD`].
pub const DEFAULT_SYNC_PERIOD: u32 = 50;
