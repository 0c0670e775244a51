/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map layouts shared by the BPF data plane (rvs_lb.c) and its Rust side (src/maps.rs).
 * Every struct here has a #[repr(C)] twin in maps.rs whose size and field offsets are checked
 * by a test; change both together.
 *
 * Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), as in rvs-engine.
 * Times are bpf_ktime_get_ns() (CLOCK_MONOTONIC) nanoseconds.
 */
#ifndef RVS_LB_H
#define RVS_LB_H

#include <linux/types.h>

/* Real servers one service may have in the program; a service with more is left to rvsd. */
#define RVS_MAX_DESTS 64
/* Length of a wrr sequence table; a longer sequence leaves the service to rvsd. */
#define RVS_WRR_SEQ 1024
/* Entries of a service's sh/dh/mh table (IPVS's default mh size; sh and dh use 256); a larger
 * mh table leaves the service to rvsd. */
#define RVS_HASH_STRIDE 4093
/* TCP/UDP connection states (rvs-engine's ConnState numbering); tables have RVS_STATE_SLOTS
 * columns so that a state masked with RVS_STATE_SLOTS - 1 is always in bounds. */
#define RVS_STATES 12
#define RVS_STATE_SLOTS 16
#define RVS_STATE_NONE 0
#define RVS_STATE_ESTABLISHED 1
#define RVS_STATE_SYN_RECV 3
#define RVS_STATE_FIN_WAIT 4
#define RVS_STATE_TIME_WAIT 5
#define RVS_STATE_CLOSE 6
#define RVS_STATE_CLOSE_WAIT 7
#define RVS_STATE_SYNACK 10
#define RVS_STATE_UDP 11

/* Schedulers the program runs itself; RVS_SCHED_USER (`-s none`) leaves new connections to rvsd. */
enum rvs_sched {
	RVS_SCHED_USER = 0,
	RVS_SCHED_RR = 1,
	RVS_SCHED_WRR = 2,
	RVS_SCHED_LC = 3,
	RVS_SCHED_WLC = 4,
	RVS_SCHED_SED = 5,
	RVS_SCHED_NQ = 6,
	RVS_SCHED_FO = 7,
	RVS_SCHED_OVF = 8,
	RVS_SCHED_SH = 9,
	RVS_SCHED_DH = 10,
	RVS_SCHED_MH = 11,
	RVS_SCHED_TWOS = 12,
	RVS_SCHED_LBLC = 13,
	RVS_SCHED_LBLCR = 14,
};

/* Tunnel encapsulations and checksum modes of a TUN real server (rvs-engine's TunnelKind and
 * TunnelChecksum, `--tun-type` and `--tun-flags`). */
#define RVS_TUN_IPIP 0
#define RVS_TUN_GUE 1
#define RVS_TUN_GRE 2
#define RVS_TUN_NOCSUM 0
#define RVS_TUN_CSUM 1
#define RVS_TUN_REMCSUM 2

/* Forwarding methods (IPVS's IP_VS_CONN_F_* low bits). */
enum rvs_method {
	RVS_METHOD_MASQ = 0,
	RVS_METHOD_LOCAL = 1,
	RVS_METHOD_TUNNEL = 2,
	RVS_METHOD_ROUTE = 3,
	RVS_METHOD_FULLNAT = 5, /* source and destination translated (rvs-sync's F_FULLNAT) */
};

/* Local addresses of a FULLNAT service the program uses, at most (a service with more is
 * left to rvsd). */
#define RVS_MAX_LADDRS 8
/* FULLNAT local ports: from this one up to 65535. */
#define RVS_LPORT_MIN 1024

/* Why a frame went to rvsd instead of being forwarded here (counted per reason). */
enum rvs_punt {
	RVS_PUNT_IP_OPTIONS = 0,
	RVS_PUNT_FRAGMENT = 1,
	RVS_PUNT_ICMP = 2,
	RVS_PUNT_SERVICE = 3,    /* the service needs what the program does not do */
	RVS_PUNT_CONN = 4,       /* a connection rvsd owns */
	RVS_PUNT_TABLE_FULL = 5, /* the connection table reached its bound */
	RVS_PUNT_OTHER = 6,      /* a frame the program does not parse (VLAN, extension headers) */
	RVS_PUNT_TOO_BIG = 7,    /* tunnelled, it would exceed the path MTU: rvsd answers with ICMP */
	RVS_PUNT_TUNNEL = 8,     /* to be tunnelled in a way the program cannot do exactly */
	RVS_PUNT_FRAG_NEEDED = 9, /* over the path MTU, not to be fragmented: rvsd answers with ICMP */
	RVS_PUNT_SYNPROXY_ACK = 10, /* an ACK whose SYN cookie the program checked: rvsd opens it */
	RVS_PUNT_REASONS = 11,
};

/* Per-CPU counters of the program (index into the `stats` map). */
enum rvs_stat {
	RVS_STAT_RX = 0,
	RVS_STAT_FORWARDED = 1,
	RVS_STAT_PASSED = 2,      /* not ours: left to the kernel */
	RVS_STAT_DROP_NO_DEST = 3,
	RVS_STAT_DROP_NON_SYN = 4,
	RVS_STAT_DROP_TTL = 5,
	RVS_STAT_DROP_MALFORMED = 6,
	RVS_STAT_CONN_CREATED = 7,
	RVS_STAT_FIB_PASS = 8,    /* forwarded through the kernel (no neighbour yet) */
	RVS_STAT_EXPIRED = 9,     /* connections expired by rvs_expire */
	RVS_STAT_SYNC_LOST = 10,  /* sync records lost: the `sync_ring` was full */
	RVS_STAT_DROP_NO_LPORT = 11, /* FULLNAT: no free local port found */
	RVS_STAT_SYNPROXY_ANSWERED = 12, /* SYNs answered here with a SYN cookie */
	RVS_STAT_SYNPROXY_NO_ROUTE = 13, /* SYNs dropped: no route back to their source */
	RVS_STAT_DROP_DEFENSE = 14, /* new connections dropped by IPVS's drop_packet */
	RVS_STAT_DEFENSE_ENTRIES = 15, /* connections removed by IPVS's drop_entry */
	RVS_STAT_PUNT = 16,       /* then +reason */
	RVS_STATS = RVS_STAT_PUNT + RVS_PUNT_REASONS,
};

struct rvs_addr {
	__u32 w[4];
};

/* What an address is to the director: `addrs` value flags. Frames the program does not
 * forward itself (ICMP, fragments, IP options) are rvsd's only when they go to a virtual
 * address or come from a NAT real server; others belong to the kernel. */
#define RVS_ADDR_VIP 0x01
#define RVS_ADDR_NAT_DEST 0x02
/* A virtual address of services rvsd serves whole (firewall-mark, SCTP): its packets that are
 * no service or connection of the program's go to rvsd. */
#define RVS_ADDR_USER_VIP 0x04
/* A real server of such services: its packets of other protocols go to rvsd too. */
#define RVS_ADDR_USER_DEST 0x08

/* A virtual service: `services` key. */
struct rvs_svc_key {
	struct rvs_addr addr;
	__u16 port; /* network order */
	__u8 proto;
	__u8 pad;
};

/* Service flags. */
#define RVS_SVC_F_USER 0x01     /* new connections are scheduled by rvsd */
#define RVS_SVC_F_FALLBACK 0x02 /* sh/mh: skip unavailable servers by rehashing */
#define RVS_SVC_F_PORT 0x04     /* sh/mh: hash the source port too */
#define RVS_SVC_F_PERSIST 0x08  /* persistent (-p): clients keep their server by templates */
#define RVS_SVC_F_SYNPROXY 0x10 /* with USER: SYNs answered with cookies here (lb_synproxy.h) */

/* A virtual service: `services` value. */
struct rvs_svc {
	__u32 id;    /* index into svc_dests, sched_cursor */
	__u8 sched;  /* enum rvs_sched */
	__u8 flags;  /* RVS_SVC_F_* */
	__u16 pad;
};

/* The real servers of a service, in rvsd's order: `svc_dests` value, indexed by service id. */
struct rvs_svc_dests {
	__u32 count;
	__u32 wrr_len; /* steps of the wrr sequence used */
	__u32 wrr_mw;  /* wrr: the maximum weight less the gcd step plus one */
	__u32 wrr_di;  /* wrr: the gcd step */
	__u32 hash_len; /* sh/dh/mh: entries of the service's table used (0: empty table) */
	__u32 slot[RVS_MAX_DESTS];
	__u32 persist_ms; /* RVS_SVC_F_PERSIST: the persistence timeout */
	__u32 table;      /* wrr, sh, dh, mh: the service's table, in strides of wrr_seq/hash_tab */
	struct rvs_addr persist_mask; /* the client address mask (-M; IPv4 as IPv4-mapped) */
	__u32 laddr_count; /* FULLNAT: local addresses used */
	__u32 pad2;
	struct rvs_addr laddr[RVS_MAX_LADDRS];
};

/* A persistence template (IPVS's `ip_vs_sched_persist`): `templates` key. `vport` is 0 for a
 * port-0 service (the connections keep the client's destination port). The service id stands
 * for the virtual address. */
struct rvs_tpl_key {
	struct rvs_addr client; /* masked */
	__u32 svc;
	__u16 vport; /* network order */
	__u8 proto;
	__u8 pad;
};

/* A persistence template: `templates` value. */
struct rvs_tpl {
	__u64 expires_ns;
	__u32 dest;       /* dest slot */
	__u32 n_control;  /* live connections it controls (IPVS's n_control), atomic */
	__u32 timeout_ms;
	__u16 dport;      /* network order; 0 for a port-0 service */
	__u16 gen;        /* tells this template from an earlier one of the same key */
};

/* `locality` key: one destination address in the lblc/lblcr table of service `svc`. */
struct rvs_loc_key {
	struct rvs_addr dst;
	__u32 svc;
};

/* A server an lblc/lblcr entry names: its dest slot and rvs-engine id (both must match). */
struct rvs_loc_member {
	__u32 slot;
	__u32 id;
};

/* `locality` value: lblc's server (m[0]) or lblcr's set, most recent first. */
struct rvs_loc {
	__u64 lastuse_ns; /* the last schedule for this destination */
	__u64 lastmod_ns; /* lblcr: the set's last change */
	__u32 n;          /* members */
	__u32 kept;       /* the program's cursor while it compacts the set */
	struct rvs_loc_member m[RVS_MAX_DESTS];
};

/* One step of a wrr sequence (`wrr_seq` value): the service's dest at index `pos`, taken
 * when the current weight is `level`. */
struct rvs_wrr_step {
	__u32 level;
	__u32 pos;
};

/* The scheduler cursor (`sched_cursor` value) has rvs-engine's layout, so rvsd carries it
 * across configuration changes with the engine's rules: bits 33 and up hold rr's next start
 * position or wrr's current weight; bit 32 is set when the low 32 bits hold rr's last pick (a
 * dest id) or wrr's step index. */
#define RVS_CURSOR_HAS_LOW (1ULL << 32)

/* A real server: `dests` value, indexed by dest slot (written by rvsd). */
struct rvs_dest {
	struct rvs_addr addr;
	__u16 port; /* network order */
	__u8 method;
	__u8 available; /* 0 once removed from its service */
	__u32 weight;
	__u32 u_threshold; /* 0: none */
	__u32 l_threshold; /* 0: 3/4 of u_threshold */
	__u32 id;          /* rvs-engine's id of the server (rr's cursor names it) */
	__u8 tun_kind;     /* RVS_TUN_IPIP/GUE/GRE (method RVS_METHOD_TUNNEL) */
	__u8 tun_csum;     /* RVS_TUN_NOCSUM/CSUM/REMCSUM */
	__u16 tun_port;    /* GUE's UDP destination port, network order */
};

/* IPVS's traffic counters of a service (`svc_stats`, by service id) or a real server
 * (`dest_stats`, by dest slot): per-CPU values rvsd sums. */
struct rvs_traffic {
	__u64 conns;
	__u64 in_packets;
	__u64 out_packets;
	__u64 in_bytes;
	__u64 out_bytes;
};

/* A real server's connection counts: `dest_conns` value (shared, updated atomically). */
struct rvs_dest_conns {
	__u32 active;
	__u32 inactive;
	__u32 overloaded;
	__u32 pad;
};

/* A connection, keyed by the packet tuple that reaches the director from the client. */
struct rvs_conn_key {
	struct rvs_addr src;
	struct rvs_addr dst;
	__u16 sport; /* network order */
	__u16 dport; /* network order */
	__u8 proto;
	__u8 pad[3];
};

/* Connection flags. */
#define RVS_CONN_F_NOOUTPUT 0x01 /* replies bypass the director (DR, TUN) */
#define RVS_CONN_F_TEMPLATE 0x02 /* controlled by a persistence template */
#define RVS_CONN_F_ANY_PORT 0x04 /* ... of a port-0 service (the template's vport is 0) */
#define RVS_CONN_F_SEQ_SHIFT 0x08 /* a SYN-proxied connection rvsd handed over: its numbers
				   * are shifted by `seq_delta` (lb_synproxy.h) */

/* A next hop the FIB gave for one direction of a connection, kept so that its packets skip
 * the lookup while the kernel's routes and neighbours stay as they were (`gen` equal to the
 * settings' `fib_gen`, which rvsd changes when they change). */
struct rvs_hop {
	__u32 gen; /* 0: empty */
	__u32 ifindex;
	__u16 mtu; /* packets longer than this (not GSO) look the route up again */
	__u8 dmac[6];
	__u8 smac[6];
	__u8 pad[2];
};

/* A connection: `conns` value. */
struct rvs_conn {
	struct rvs_addr daddr; /* the real server */
	__u16 dport;           /* network order */
	__u8 state;
	__u8 flags;
	__u32 dest;            /* dest slot */
	__u32 svc;             /* service id */
	__u8 method;
	__u8 sync_state;       /* the state last sent to the backups */
	__u16 sync_pkts;       /* incoming packets, for IPVS's sync threshold (wraps) */
	__u64 expires_ns;
	__u64 packets;         /* the client's, and the real server's that need the connection */
	__u64 bytes;           /* (a plain reply is counted for its service and server only) */
	struct rvs_hop hop;    /* toward the real server */
	struct rvs_addr laddr; /* FULLNAT: the local address and port toward the real server */
	__u16 lport;           /* network order */
	__u16 tpl_gen;         /* RVS_CONN_F_TEMPLATE: the generation of its template */
	__u32 seq_delta;       /* RVS_CONN_F_SEQ_SHIFT: the director's ISN less the server's */
};

/* The reply direction of a NAT connection: `conns_out` maps the reply tuple (real server to
 * client) to the connection's key, with what a real server's plain segment needs to be
 * translated and counted without a second lookup, of the connection itself (lb_decide.h's
 * plain_reply). */
struct rvs_conn_out {
	struct rvs_conn_key in;
	struct rvs_hop hop; /* toward the client */
	__u64 expires_ns;   /* the connection's expiry as of its last state change or full-path reply */
	__u32 svc;          /* the connection's service id */
	__u32 dest;         /* the connection's dest slot */
	__u8 state;         /* the connection's state, written with it (RVS_STATE_NONE: not known) */
	__u8 method;        /* the connection's RVS_METHOD_MASQ or RVS_METHOD_FULLNAT */
	__u8 flags;         /* RVS_OUT_F_* */
	__u8 pad[5];
};

#define RVS_OUT_F_FULL_PATH 0x01 /* every reply needs the connection (RVS_CONN_F_SEQ_SHIFT) */

/* Global settings: `settings` value at index 0. */
struct rvs_settings {
	/* IPVS's state table: [INPUT, OUTPUT, INPUT-ONLY][syn, fin, ack, rst][state], states
	 * as rvs-engine's ConnState (11 TCP columns used). */
	__u8 tcp_next[3][4][RVS_STATE_SLOTS];
	/* Timeout per state, milliseconds. */
	__u32 timeout_ms[RVS_STATE_SLOTS];
	__u8 sloppy_tcp;
	__u8 expire_nodest_conn; /* a packet of a connection whose server was removed expires it */
	__u8 sync_export; /* a sync master runs: connection changes go to `sync_ring` */
	__u8 conn_reuse_mode; /* IPVS's: a SYN finding a closing connection starts a new one */
	__u32 fib_gen; /* the kernel tables' version for cached next hops; 0: no caching */
	__u32 sync_threshold; /* IPVS's sync_threshold (3) and sync_period (50) */
	__u32 sync_period;
	__u8 expire_quiescent_template; /* a template whose server has weight 0 is not used */
	__u8 syn_proxy; /* rvs's SYN proxy on: its services are rvsd's (not read here) */
	__u8 pad2[2];
	/* IPVS's drop_packet: one new connection in this many is dropped (0: none). rvsd sets
	 * it from the engine's defence, and writes `tcp_next` from secure_tcp's table while that
	 * is on. */
	__u32 drop_rate;
};

/* What rvs_drop_entries reads from its frame, after a zeroed Ethernet header. */
struct rvs_drop_entries_in {
	__u32 part; /* visit the connections whose key hashes to this 32nd of the table */
	__u32 pad;
};

/* A connection the sync master sends (`sync_ring` record): what IPVS's sync message carries of
 * it, in the program's terms. */
struct rvs_sync_event {
	struct rvs_conn_key key;
	struct rvs_addr daddr;
	__u16 dport; /* network order */
	__u8 state;
	__u8 method;
	__u32 timeout_ms; /* the state's timeout (a template's: the persistence timeout) */
	__u32 flags;      /* RVS_SYNC_EV_* */
	__u32 pad;
	struct rvs_addr laddr; /* FULLNAT: the local address and port */
	__u16 lport;           /* network order */
	__u16 pad2;
	__u32 seq_delta;       /* RVS_SYNC_EV_SEQ_SHIFT: the connection's shift */
};

/* A sync event of a persistence template: `key` holds the masked client (port 0), the virtual
 * address and port (0 for a port-0 service), `daddr`/`dport` the template's server. */
#define RVS_SYNC_EV_TEMPLATE 0x01
/* A SYN-proxied connection whose sequence numbers are shifted by `seq_delta` (IPVS's sync
 * message carries it in its sequence option). */
#define RVS_SYNC_EV_SEQ_SHIFT 0x02

/* A connection a sync backup installs (the input of rvs_sync_in, after a zeroed Ethernet
 * header): the record resolved by rvsd to the program's service id and dest slot. */
struct rvs_sync_in {
	struct rvs_conn_key key;
	struct rvs_addr daddr;
	__u16 dport; /* network order */
	__u8 state;
	__u8 method;
	__u32 dest;
	__u32 svc;
	__u32 timeout_ms;
	__u32 flags; /* RVS_SYNC_EV_TEMPLATE: a template (key.src masked, key.dport its vport);
		      * RVS_SYNC_EV_SEQ_SHIFT: a SYN-proxied connection */
	struct rvs_addr laddr; /* FULLNAT: the local address and port */
	__u16 lport;           /* network order */
	__u16 pad2;
	__u32 seq_delta;       /* RVS_SYNC_EV_SEQ_SHIFT: the connection's shift */
	__u32 pad3;
};

/* rvs_sync_in's answers. */
#define RVS_SYNC_IN_ADDED 0
#define RVS_SYNC_IN_REFRESHED 1
#define RVS_SYNC_IN_FULL 2 /* the connection table reached its bound */
#define RVS_SYNC_IN_BAD 3  /* the input was short */

#endif
