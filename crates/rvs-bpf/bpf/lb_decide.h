/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What to do with a parsed packet: IPVS's per-packet decisions (connection lookup both ways,
 * state, scheduling, new connections), the same at tc and XDP, without touching the packet.
 * The hook carries the decision out (lb_tc.h, lb_xdp.h). */
#ifndef RVS_LB_DECIDE_H
#define RVS_LB_DECIDE_H

enum action {
	ACT_PASS = 0,    /* not ours: the kernel's */
	ACT_DROP = 1,    /* dropped (counted under `stat`) */
	ACT_PUNT = 2,    /* to rvsd (`reason`) */
	ACT_NAT_IN = 3,  /* destination to addr:port, then forwarded to addr */
	ACT_NAT_OUT = 4, /* source to addr:port (the virtual service), then forwarded to the client */
	ACT_DR = 5,      /* forwarded unchanged to the real server addr */
	ACT_FNAT_IN = 6, /* NAT_IN, and the source to addr2:port2 (the local address) */
	ACT_FNAT_OUT = 7, /* NAT_OUT, and the destination to addr2:port2 (the client) */
	ACT_TUN = 8,     /* tunnelled unchanged to the real server addr (lb_tunnel.h) */
	ACT_SYNACK = 9,  /* a SYN answered with a cookie (lb_synproxy.h) */
	ACT_COOKIE = 10, /* an ACK that may carry a cookie: checked, then to rvsd */
};

struct decision {
	__u32 action;
	__u32 why; /* ACT_DROP: the stat; ACT_PUNT: the reason */
	struct rvs_addr addr;
	__be16 port;
	__be16 port2;
	struct rvs_addr addr2; /* FULLNAT: the other side's new address */
	struct rvs_hop *hop; /* the connection's cached next hop for this direction, if any */
	__u32 fib_gen;       /* the settings' tables version */
	__u32 dest;          /* ACT_TUN: the real server's slot (rvsd tunnels what is punted) */
	__u8 tun_kind;       /* ACT_TUN: the server's RVS_TUN_* encapsulation */
	__u8 tun_csum;       /* ACT_TUN: its checksum mode */
	__be16 tun_port;     /* ACT_TUN: GUE's destination port */
	__u8 seq_shift;      /* SHIFT_*: a handed-over SYN-proxied connection (lb_synproxy.h) */
	__u8 pad[3];
	__u32 seq_delta;     /* ... shifted by this */
};

/* Which TCP number of a handed-over SYN-proxied connection's segment moves. */
#define SHIFT_NONE 0
#define SHIFT_ACK_BACK 1 /* client to server: the acknowledgement number, less the delta */
#define SHIFT_SEQ_ON 2   /* server to client: the sequence number, plus the delta */

/* Whether a real server's packets leave untouched, the replies bypassing the director:
 * direct routing and tunnelling (IPVS's INPUT-ONLY connections). */
static __always_inline int bypassed(__u8 method)
{
	return method == RVS_METHOD_ROUTE || method == RVS_METHOD_TUNNEL;
}

/* Sets the decision for a packet to the real server `dest` (slot `slot`) of a connection
 * whose method is not NAT: as is (DR) or tunnelled with the server's settings. */
static __always_inline void to_bypassed(struct decision *d, struct rvs_dest *dest, __u32 slot,
					__u8 method)
{
	d->dest = slot;
	if (method != RVS_METHOD_TUNNEL) {
		d->action = ACT_DR;
		return;
	}
	d->action = ACT_TUN;
	d->tun_kind = dest->tun_kind;
	d->tun_csum = dest->tun_csum;
	d->tun_port = dest->tun_port;
}

/* Counts a packet of `len` bytes (and a new connection with `conn`) for its service and real
 * server, in this CPU's slot; `out` for the real server's direction. */
static __always_inline void traffic(__u32 svc, __u32 dest, __u32 len, int out, int conn)
{
	struct rvs_traffic *t[2] = {
		bpf_map_lookup_elem(&svc_stats, &svc),
		bpf_map_lookup_elem(&dest_stats, &dest),
	};
	int i;

#pragma unroll
	for (i = 0; i < 2; i++) {
		if (!t[i])
			continue;
		if (conn)
			t[i]->conns++;
		if (out) {
			t[i]->out_packets++;
			t[i]->out_bytes += len;
		} else {
			t[i]->in_packets++;
			t[i]->in_bytes += len;
		}
	}
}

static __always_inline int drop(struct decision *d, __u32 stat)
{
	d->action = ACT_DROP;
	d->why = stat;
	return 0;
}

static __always_inline int to_rvsd(struct decision *d, __u32 reason)
{
	d->action = ACT_PUNT;
	d->why = reason;
	return 0;
}

/* Re-arms a connection's timer and counts a packet. Both directions of a connection are
 * often handled on different CPUs, so the shared entry is written as little as possible: the
 * expiry only when it moves by more than EXPIRY_SLACK_NS (IPVS's timers are not finer), the
 * counters without atomics (a lost increment under a race is tolerated; the per-CPU service and
 * server counters are the exact ones). */
#define EXPIRY_SLACK_NS 100000000ULL

static __always_inline void touch(struct rvs_conn *c, __u64 expires, __u32 len)
{
	if (expires > c->expires_ns + EXPIRY_SLACK_NS || expires < c->expires_ns) {
		c->expires_ns = expires;
		note_expiry(expires);
	}
	c->packets++;
	c->bytes += len;
}

/* Takes a connection out of the tables and out of its server's counts (`key`: its key in
 * `conns`), as IPVS's expiry does. Only the CPU whose delete succeeds does the rest, so a
 * packet and the sweep racing for one connection count it out once. Both keys and the fields
 * are copied before the deletes: `key` and `c` often lie in the entries deleted (a reply
 * entry's copy of the key, the sweep's entry), and a preallocated entry can be taken by
 * another CPU's insert as soon as it is deleted. The copies are in per-CPU scratch space (the
 * stack is short). */
static __always_inline void forget_conn(struct rvs_conn_key *key, struct rvs_conn *c)
{
	__u32 zero = 0;
	struct conn_scratch *w = bpf_map_lookup_elem(&conn_scratch, &zero);
	__u32 dest = c->dest, svc = c->svc;
	__u8 state = c->state, flags = c->flags;
	__u16 gen = c->tpl_gen;
	int nat = c->method == RVS_METHOD_MASQ || c->method == RVS_METHOD_FULLNAT;

	if (!w)
		return;
	w->gone = *key;
	key = &w->gone;
	reply_key_of(key, c, &w->reply);
	if (bpf_map_delete_elem(&conns, key) != 0)
		return;
	if (nat)
		bpf_map_delete_elem(&conns_out, &w->reply);
	unbind_dest(dest, state);
	tpl_control(svc, key, flags, 0, gen);
}

/* The connection's server, or NULL once it was removed from its service: IPVS drops the
 * packet then (with expire_nodest_conn, decide lets the connection go and takes the packet for
 * a new one). */
static __always_inline struct rvs_dest *dest_of(struct rvs_conn *c)
{
	struct rvs_dest *dest = bpf_map_lookup_elem(&dests, &c->dest);

	return dest && dest->available ? dest : NULL;
}

/* Whether a client's packet finding connection `c` starts afresh instead: the connection is
 * past its timeout (the sweep has not run yet), or the packet is a SYN and IPVS's
 * conn_reuse_mode expects a new connection (`is_new_conn_expected`): TIME_WAIT or CLOSE, or
 * with bit 1 FIN_WAIT of a direct-routing connection; never one a template controls. */
static __always_inline int conn_stale(struct rvs_settings *s, struct pkt *p, struct rvs_conn *c,
				      __u64 now)
{
	if (c->expires_ns <= now)
		return 1;
	if (!s->conn_reuse_mode || p->proto != IPPROTO_TCP || !(p->tcp_flags & TCPF_SYN) ||
	    (c->flags & RVS_CONN_F_TEMPLATE))
		return 0;
	return c->state == RVS_STATE_TIME_WAIT || c->state == RVS_STATE_CLOSE ||
	       ((s->conn_reuse_mode & 2) && c->state == RVS_STATE_FIN_WAIT &&
		(c->flags & RVS_CONN_F_NOOUTPUT));
}

/* A packet of a known connection from the client's side (`dest`: its server, NULL when
 * removed). */
static __always_inline int conn_in(struct pkt *p, struct rvs_settings *s, struct rvs_conn *c,
				   struct rvs_dest *dest, __u64 now, struct decision *d)
{
	__u8 state = c->state;
	int changed = 0;

	if (c->method != RVS_METHOD_MASQ && c->method != RVS_METHOD_FULLNAT &&
	    !bypassed(c->method))
		return to_rvsd(d, RVS_PUNT_CONN);
	if (!dest)
		return drop(d, RVS_STAT_DROP_NO_DEST);
	if (p->ttl <= 1)
		return drop(d, RVS_STAT_DROP_TTL);
	if (p->proto == IPPROTO_TCP) {
		__u8 next = next_state(s, state, (c->flags & RVS_CONN_F_NOOUTPUT) ? 2 : 0, p->tcp_flags);

		if (next != state) {
			c->state = next;
			move_count(c->dest, state, next);
			state = next;
			changed = 1;
		}
	}
	touch(c, now + timeout_ns(s, state), p->len);
	/* The reply entry's copy of the expiry may fall behind the client's packets (a plain
	 * reply after it takes the full path, which catches it up): only a state change, which
	 * may also move the expiry sooner, is carried over at once. */
	if (changed)
		mirror_conn(&p->key, c);
	sync_note(s, &p->key, c);
	traffic(c->svc, c->dest, p->len - p->l3, 0, 0);
	d->hop = &c->hop;
	d->addr = c->daddr;
	d->port = c->dport;
	d->action = ACT_NAT_IN;
	if (c->flags & RVS_CONN_F_SEQ_SHIFT) {
		d->seq_shift = SHIFT_ACK_BACK;
		d->seq_delta = c->seq_delta;
	}
	if (c->method == RVS_METHOD_FULLNAT) {
		d->action = ACT_FNAT_IN;
		d->addr2 = c->laddr;
		d->port2 = c->lport;
	} else if (bypassed(c->method)) {
		to_bypassed(d, dest, c->dest, c->method);
	}
	return 0;
}

/* Sets the decision for a NAT connection's reply (entry `out`): back to the client, from the
 * virtual service (FULLNAT: to the client from its local address). */
static __always_inline void to_client(struct decision *d, struct rvs_conn_out *out)
{
	d->hop = &out->hop;
	d->addr = out->in.dst;
	d->port = out->in.dport;
	d->action = ACT_NAT_OUT;
	if (out->method == RVS_METHOD_FULLNAT) {
		d->action = ACT_FNAT_OUT;
		d->addr2 = out->in.src;
		d->port2 = out->in.sport;
	}
}

/* A reply of a NAT connection from its real server (removed or not). */
static __always_inline int conn_reply(struct pkt *p, struct rvs_settings *s, struct rvs_conn_out *out,
				      __u64 now, struct decision *d)
{
	struct rvs_conn *c = bpf_map_lookup_elem(&conns, &out->in);
	__u8 state;

	if (c && c->expires_ns <= now) {
		forget_conn(&out->in, c);
		c = NULL;
	}
	if (!c) {
		d->action = ACT_PASS;
		return 0;
	}
	/* No test of the server's availability: IPVS translates a removed server's replies while
	 * the connection lives (only its client's packets are dropped). */
	if (p->ttl <= 1)
		return drop(d, RVS_STAT_DROP_TTL);
	state = c->state;
	if (p->proto == IPPROTO_TCP) {
		__u8 next = next_state(s, state, 1, p->tcp_flags);

		if (next != state) {
			c->state = next;
			move_count(c->dest, state, next);
			state = next;
		}
	}
	touch(c, now + timeout_ns(s, state), p->len);
	/* The connection's state as it is now (the client's side may have moved it since). */
	out->state = c->state;
	out->expires_ns = c->expires_ns;
	traffic(c->svc, c->dest, p->len - p->l3, 1, 0);
	to_client(d, out);
	if (c->flags & RVS_CONN_F_SEQ_SHIFT) {
		d->seq_shift = SHIFT_SEQ_ON;
		d->seq_delta = c->seq_delta;
	}
	return 0;
}

/* Whether a real server's segment needs nothing of its connection but what its reply entry
 * holds: a TCP segment without SYN, FIN or RST that leaves the connection's state as it is
 * (IPVS's OUTPUT column of the state table; ESTABLISHED and the closing states for a plain
 * ACK), of a connection not past the expiry its reply entry last saw, with no sequence
 * shift, and not at its last hop. Such a reply does not re-arm the
 * connection's timer: the client's acknowledgements of the data it carries do, so the
 * timer is the client's last packet's, no later than IPVS's would be by the round trip. */
static __always_inline int plain_reply(struct pkt *p, struct rvs_settings *s,
				       struct rvs_conn_out *out, __u64 now)
{
	return out->expires_ns > now && p->proto == IPPROTO_TCP && !(p->tcp_flags & (TCPF_SYN | TCPF_FIN | TCPF_RST)) &&
	       (p->tcp_flags & TCPF_ACK) && !(out->flags & RVS_OUT_F_FULL_PATH) &&
	       out->state != RVS_STATE_NONE && p->ttl > 1 &&
	       next_state(s, out->state, 1, p->tcp_flags) == out->state;
}

/* A frame found in the reply table is a NAT connection's reply (1): a plain one from its reply
 * entry alone, any other by conn_reply. */
static __always_inline int reply_of_conn(struct pkt *p, struct rvs_settings *s, __u64 now,
					 struct decision *d)
{
	struct rvs_conn_out *out = bpf_map_lookup_elem(&conns_out, &p->key);

	if (!out)
		return 0;
	if (plain_reply(p, s, out, now)) {
		traffic(out->svc, out->dest, p->len - p->l3, 1, 0);
		to_client(d, out);
		return 1;
	}
	conn_reply(p, s, out, now, d);
	return 1;
}

/* Opens a connection to the chosen server `pick`: NAT gets its reply entry too; direct
 * routing and tunnelling are tracked in the client's direction only (IPVS's INPUT-ONLY
 * states). `tpl`: the RVS_CONN_F_TEMPLATE/ANY_PORT flags of a persistent service's
 * connection. */
static __always_inline int open_conn(struct pkt *p, struct rvs_settings *s, struct rvs_svc *svc,
				     struct pick *pick, __u8 tpl, __u64 now, struct decision *d)
{
	__u32 zero = 0;
	/* The new entries are built in per-CPU scratch space: on the stack they would leave no
	 * room for the scheduler's frame (BPF's 512 bytes are for the whole call chain). */
	struct conn_scratch *w = bpf_map_lookup_elem(&conn_scratch, &zero);
	struct rvs_hop *dest_hop = bpf_map_lookup_elem(&dest_hops, &pick->slot);
	struct rvs_conn *c;
	int dr = bypassed(pick->dest->method);
	int fnat = pick->dest->method == RVS_METHOD_FULLNAT;
	__u8 state;
	int synced;

	if (!w)
		return to_rvsd(d, RVS_PUNT_TABLE_FULL);
	c = &w->conn;
	__builtin_memset(w, 0, sizeof(*w));
	if (p->proto == IPPROTO_TCP)
		state = next_state(s, RVS_STATE_NONE, dr ? 2 : 0, p->tcp_flags);
	else
		state = RVS_STATE_UDP;
	c->daddr = pick->dest->addr;
	c->dport = dr || (tpl & RVS_CONN_F_ANY_PORT) || !pick->dest->port ? p->key.dport
									    : pick->dest->port;
	c->state = state;
	c->flags = (dr ? RVS_CONN_F_NOOUTPUT : 0) | tpl;
	c->dest = pick->slot;
	c->svc = svc->id;
	c->method = dr ? pick->dest->method : fnat ? RVS_METHOD_FULLNAT : RVS_METHOD_MASQ;
	c->expires_ns = now + timeout_ns(s, state);
	note_expiry(c->expires_ns);
	if (dest_hop && s->fib_gen && dest_hop->gen == s->fib_gen)
		c->hop = *dest_hop;
	c->packets = 1;
	c->bytes = p->len;
	synced = s->sync_export && sync_due(s, p->proto, c);
	/* The reply entry (w->out, zeroed: no flags), as out_of would fill it; its key is
	 * copied where it is inserted, which keeps the hooks' frame small. */
	w->out.expires_ns = c->expires_ns;
	w->out.svc = svc->id;
	w->out.dest = pick->slot;
	w->out.state = state;
	w->out.method = c->method;
	if (fnat) {
		struct rvs_svc_dests *sd = bpf_map_lookup_elem(&svc_dests, &svc->id);

		if (!sd || !fnat_take(p, sd, c, &w->reply, &w->out))
			return drop(d, RVS_STAT_DROP_NO_LPORT);
	} else if (!dr) {
		w->reply.src = c->daddr;
		w->reply.dst = p->key.src;
		w->reply.sport = c->dport;
		w->reply.dport = p->key.sport;
		w->reply.proto = p->proto;
		w->out.in = p->key;
		if (bpf_map_update_elem(&conns_out, &w->reply, &w->out, BPF_NOEXIST) < 0)
			return to_rvsd(d, RVS_PUNT_TABLE_FULL);
	}
	c->tpl_gen = tpl_control(svc->id, &p->key, c->flags, 1, 0);
	if (bpf_map_update_elem(&conns, &p->key, c, BPF_NOEXIST) < 0) {
		if (!dr)
			bpf_map_delete_elem(&conns_out, &w->reply);
		tpl_control(svc->id, &p->key, c->flags, 0, c->tpl_gen);
		return to_rvsd(d, RVS_PUNT_TABLE_FULL);
	}
	bind_dest(pick);
	if (is_active(state))
		move_count(pick->slot, RVS_STATE_NONE, state);
	if (synced)
		sync_emit(s, &p->key, c);
	count(RVS_STAT_CONN_CREATED);
	traffic(svc->id, pick->slot, p->len - p->l3, 0, 1);
	d->hop = dest_hop;
	d->addr = c->daddr;
	d->port = c->dport;
	d->action = ACT_NAT_IN;
	if (fnat) {
		d->action = ACT_FNAT_IN;
		d->addr2 = c->laddr;
		d->port2 = c->lport;
	} else if (dr) {
		to_bypassed(d, pick->dest, pick->slot, c->method);
	}
	return 0;
}

/* IPVS's drop_packet (`ip_vs_todrop`): while rvsd's defence sets a rate, one new connection
 * in `drop_rate` is dropped (counted per CPU). */
static __always_inline int defense_drops(struct rvs_settings *s)
{
	__u32 zero = 0;
	__s64 *left;

	if (!s->drop_rate)
		return 0;
	left = bpf_map_lookup_elem(&defense_left, &zero);
	if (!left)
		return 0;
	if (--*left > 0)
		return 0;
	*left = s->drop_rate;
	return 1;
}

/* A packet to a service without a connection: IPVS's checks, schedule, open. `any_port`:
 * the service is a port-0 one. */
static __always_inline int new_conn(struct pkt *p, struct rvs_settings *s, struct rvs_svc *svc,
				    int any_port, __u64 now, struct decision *d)
{
	struct pick pick = {};
	__u8 tpl = 0;
	int full = 0, kept = 0;

	if ((svc->flags & RVS_SVC_F_SYNPROXY) && p->proto == IPPROTO_TCP) {
		__u8 f = p->tcp_flags & (TCPF_SYN | TCPF_ACK | TCPF_RST);

		if (f == TCPF_SYN) {
			if (defense_drops(s))
				return drop(d, RVS_STAT_DROP_DEFENSE);
			d->action = ACT_SYNACK;
			return 0;
		}
		if (f == TCPF_ACK) {
			d->action = ACT_COOKIE;
			return 0;
		}
	}
	if (svc->flags & RVS_SVC_F_USER || svc->sched == RVS_SCHED_USER)
		return to_rvsd(d, RVS_PUNT_SERVICE);
	if (p->proto == IPPROTO_TCP &&
	    ((p->tcp_flags & TCPF_RST) || (!(p->tcp_flags & TCPF_SYN) && !s->sloppy_tcp)))
		return drop(d, RVS_STAT_DROP_NON_SYN);
	if (p->ttl <= 1)
		return drop(d, RVS_STAT_DROP_TTL);
	if (defense_drops(s))
		return drop(d, RVS_STAT_DROP_DEFENSE);
	if (svc->flags & RVS_SVC_F_PERSIST) {
		tpl = RVS_CONN_F_TEMPLATE | (any_port ? RVS_CONN_F_ANY_PORT : 0);
		kept = persist_lookup(p, s, svc, any_port, now, &pick);
	}
	if (!kept) {
		int slot = rvs_schedule(svc->id, svc->sched | (__u32)svc->flags << 8, p);

		if (slot <= 0 || !pick_slot(slot - 1, &pick))
			return drop(d, RVS_STAT_DROP_NO_DEST);
		if (tpl && !persist_record(p, s, svc, any_port, now, &pick, &full))
			return full ? to_rvsd(d, RVS_PUNT_TABLE_FULL) : drop(d, RVS_STAT_DROP_NO_DEST);
	}
	if (pick.dest->method != RVS_METHOD_MASQ && pick.dest->method != RVS_METHOD_FULLNAT &&
	    !bypassed(pick.dest->method))
		return to_rvsd(d, RVS_PUNT_SERVICE);
	return open_conn(p, s, svc, &pick, tpl, now, d);
}

/* A packet from a virtual address that is nobody's connection: if it comes from a service's
 * own port (a real server replying through the director instead of to the client), counted
 * for that service. It still goes to the kernel, as the engine leaves it. */
static __always_inline void count_stray(struct pkt *p, struct rvs_svc_key *sk)
{
	__u32 *from = bpf_map_lookup_elem(&addrs, &p->key.src);
	struct rvs_svc *svc;
	__u64 *n;

	if (!from || !(*from & RVS_ADDR_VIP))
		return;
	sk->addr = p->key.src;
	sk->port = p->key.sport;
	sk->proto = p->proto;
	svc = bpf_map_lookup_elem(&services, sk);
	if (!svc) {
		sk->port = 0;
		svc = bpf_map_lookup_elem(&services, sk);
	}
	if (!svc)
		return;
	n = bpf_map_lookup_elem(&svc_stray, &svc->id);
	if (n)
		*n += 1;
}

/* The decision for a frame the parser returned `parsed` for. */
static __always_inline void decide(struct pkt *p, int parsed, __u32 reason, struct decision *d)
{
	struct rvs_svc_key sk = {};
	struct rvs_settings *s;
	struct rvs_conn *c;
	struct rvs_svc *svc;
	enum { SYN_NONE, SYN_ONLY, SYN_ACK } syn = SYN_NONE;
	__u32 zero = 0;
	__u64 now;

	d->action = ACT_PASS;
	if (parsed == PARSE_PASS || parsed == PARSE_SHORT)
		return;
	if (parsed == PARSE_DROP) {
		drop(d, RVS_STAT_DROP_MALFORMED);
		return;
	}
	s = bpf_map_lookup_elem(&settings, &zero);
	if (!s)
		return;
	d->fib_gen = s->fib_gen;
	if (parsed == PARSE_PUNT) {
		/* Ours only if it goes to a virtual address or comes from a NAT real server. */
		__u32 *to = bpf_map_lookup_elem(&addrs, &p->key.dst);
		__u32 *from = bpf_map_lookup_elem(&addrs, &p->key.src);
		__u32 to_flags = to ? *to : 0, from_flags = from ? *from : 0;

		if (reason == RVS_PUNT_OTHER) {
			/* Other protocols only for the services rvsd serves whole. */
			if ((to_flags & RVS_ADDR_USER_VIP) || (from_flags & RVS_ADDR_USER_DEST))
				to_rvsd(d, reason);
		} else if ((to_flags & (RVS_ADDR_VIP | RVS_ADDR_USER_VIP)) ||
			   (from_flags & (RVS_ADDR_NAT_DEST | RVS_ADDR_USER_DEST))) {
			to_rvsd(d, reason);
		}
		return;
	}
	now = bpf_ktime_get_coarse_ns();
	/* Which table a frame is looked up in first only saves lookups (no tuple is in both: a
	 * client-side key goes to a virtual address, a reply-side key to a client or a local
	 * address), and every miss in the large tables is likely a cache miss. So a SYN-ACK, a
	 * real server's answer, tries the reply side first. A SYN without ACK opens connections:
	 * it tries the reply side only when no service takes it (a real server's SYN on a reply
	 * tuple would be a simultaneous open). */
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & TCPF_SYN))
		syn = p->tcp_flags & TCPF_ACK ? SYN_ACK : SYN_ONLY;
	if (syn == SYN_ACK && reply_of_conn(p, s, now, d))
		return;
	c = bpf_map_lookup_elem(&conns, &p->key);
	if (c) {
		/* Past its time, a SYN IPVS takes for a new connection, or (expire_nodest_conn) one
		 * whose server was removed: it goes, and the packet is handled as a new one
		 * (ip_vs_in_hook). */
		int stale = conn_stale(s, p, c, now);
		struct rvs_dest *dest = stale ? NULL : dest_of(c);

		if (!stale && (dest || !s->expire_nodest_conn)) {
			conn_in(p, s, c, dest, now, d);
			return;
		}
		forget_conn(&p->key, c);
	}
	if (syn == SYN_NONE && reply_of_conn(p, s, now, d))
		return;
	/* A reply of one of rvsd's connections (a service it schedules)? */
	sk.addr = p->key.src;
	sk.port = p->key.sport;
	sk.proto = p->proto;
	if (bpf_map_lookup_elem(&user_dests, &sk)) {
		to_rvsd(d, RVS_PUNT_CONN);
		return;
	}
	sk.addr = p->key.dst;
	sk.port = p->key.dport;
	svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc) {
		sk.port = 0;
		svc = bpf_map_lookup_elem(&services, &sk);
	}
	if (svc) {
		new_conn(p, s, svc, sk.port != p->key.dport, now, d);
		return;
	}
	if (syn == SYN_ONLY && reply_of_conn(p, s, now, d))
		return;
	/* A firewall-mark service's address: rvsd classifies and schedules. */
	{
		__u32 *to = bpf_map_lookup_elem(&addrs, &p->key.dst);

		if (to && (*to & RVS_ADDR_USER_VIP)) {
			to_rvsd(d, RVS_PUNT_SERVICE);
			return;
		}
	}
	count_stray(p, &sk);
}

#endif
