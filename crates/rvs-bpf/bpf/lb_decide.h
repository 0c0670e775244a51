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
	ACT_TUN = 6,     /* tunnelled unchanged to the real server addr (lb_tunnel.h) */
};

struct decision {
	__u32 action;
	__u32 why; /* ACT_DROP: the stat; ACT_PUNT: the reason */
	struct rvs_addr addr;
	__be16 port;
	__u16 pad;
	struct rvs_hop *hop; /* the connection's cached next hop for this direction, if any */
	__u32 fib_gen;       /* the settings' tables version */
	__u32 dest;          /* ACT_TUN: the real server's slot (rvsd tunnels what is punted) */
	__u8 tun_kind;       /* ACT_TUN: the server's RVS_TUN_* encapsulation */
	__u8 tun_csum;       /* ACT_TUN: its checksum mode */
	__be16 tun_port;     /* ACT_TUN: GUE's destination port */
};

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
	if (expires > c->expires_ns + EXPIRY_SLACK_NS || expires < c->expires_ns)
		c->expires_ns = expires;
	c->packets++;
	c->bytes += len;
}

/* Whether the connection's server was removed from its service: IPVS drops the packet, and
 * with expire_nodest_conn the connection goes at once (`key`: its key in `conns`). */
static __always_inline int dest_gone(struct rvs_settings *s, struct rvs_conn *c,
				     struct rvs_conn_key *key)
{
	struct rvs_dest *dest = bpf_map_lookup_elem(&dests, &c->dest);

	if (dest && dest->available)
		return 0;
	if (s->expire_nodest_conn) {
		struct rvs_conn_key k = *key;

		if (c->method == RVS_METHOD_MASQ) {
			struct rvs_conn_key reply = {};

			reply.src = c->daddr;
			reply.dst = k.src;
			reply.sport = c->dport;
			reply.dport = k.sport;
			reply.proto = k.proto;
			bpf_map_delete_elem(&conns_out, &reply);
		}
		unbind_dest(c->dest, c->state);
		bpf_map_delete_elem(&conns, &k);
	}
	return 1;
}

/* A packet of a known connection from the client's side. */
static __always_inline int conn_in(struct pkt *p, struct rvs_settings *s, struct rvs_conn *c, __u64 now,
				   struct decision *d)
{
	__u8 state = c->state;
	struct rvs_dest *dest;

	if (c->method != RVS_METHOD_MASQ && !bypassed(c->method))
		return to_rvsd(d, RVS_PUNT_CONN);
	if (dest_gone(s, c, &p->key))
		return drop(d, RVS_STAT_DROP_NO_DEST);
	if (p->ttl <= 1)
		return drop(d, RVS_STAT_DROP_TTL);
	if (p->proto == IPPROTO_TCP) {
		__u8 next = next_state(s, state, (c->flags & RVS_CONN_F_NOOUTPUT) ? 2 : 0, p->tcp_flags);

		if (next != state) {
			c->state = next;
			move_count(c->dest, state, next);
			state = next;
		}
	}
	touch(c, now + timeout_ns(s, state), p->len);
	traffic(c->svc, c->dest, p->len - p->l3, 0, 0);
	d->hop = &c->hop;
	d->addr = c->daddr;
	d->port = c->dport;
	d->action = ACT_NAT_IN;
	if (bypassed(c->method)) {
		dest = bpf_map_lookup_elem(&dests, &c->dest);
		if (!dest)
			return drop(d, RVS_STAT_DROP_NO_DEST);
		to_bypassed(d, dest, c->dest, c->method);
	}
	return 0;
}

/* A reply of a NAT connection from its real server. */
static __always_inline int conn_reply(struct pkt *p, struct rvs_settings *s, struct rvs_conn_out *out,
				      __u64 now, struct decision *d)
{
	struct rvs_conn *c = bpf_map_lookup_elem(&conns, &out->in);
	__u8 state;

	if (!c) {
		d->action = ACT_PASS;
		return 0;
	}
	if (dest_gone(s, c, &out->in))
		return drop(d, RVS_STAT_DROP_NO_DEST);
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
	traffic(c->svc, c->dest, p->len - p->l3, 1, 0);
	d->hop = &out->hop;
	d->addr = out->in.dst;
	d->port = out->in.dport;
	d->action = ACT_NAT_OUT;
	return 0;
}

/* A new connection's entries, built in a per-CPU map value rather than on the hooks' stack
 * (which tunnelling needs). */
struct new_entries {
	struct rvs_conn c;
	struct rvs_conn_out out;
};

PERCPU_SCRATCH(new_scratch, struct new_entries)

/* Opens a connection to the chosen server `pick`: NAT gets its reply entry too; direct
 * routing and tunnelling are tracked in the client's direction only (IPVS's INPUT-ONLY
 * states). */
static __always_inline int open_conn(struct pkt *p, struct rvs_settings *s, struct rvs_svc *svc,
				     struct pick *pick, __u64 now, struct decision *d)
{
	struct new_entries *n = new_scratch_get();
	struct rvs_conn_key reply = {};
	int dr = bypassed(pick->dest->method);
	__u8 state;

	if (!n)
		return to_rvsd(d, RVS_PUNT_TABLE_FULL);
	if (p->proto == IPPROTO_TCP)
		state = next_state(s, RVS_STATE_NONE, dr ? 2 : 0, p->tcp_flags);
	else
		state = RVS_STATE_UDP;
	n->c.daddr = pick->dest->addr;
	n->c.dport = dr || !pick->dest->port ? p->key.dport : pick->dest->port;
	n->c.state = state;
	n->c.flags = dr ? RVS_CONN_F_NOOUTPUT : 0;
	n->c.dest = pick->slot;
	n->c.svc = svc->id;
	n->c.method = dr ? pick->dest->method : RVS_METHOD_MASQ;
	n->c.expires_ns = now + timeout_ns(s, state);
	n->c.packets = 1;
	n->c.bytes = p->len;
	if (!dr) {
		reply.src = n->c.daddr;
		reply.dst = p->key.src;
		reply.sport = n->c.dport;
		reply.dport = p->key.sport;
		reply.proto = p->proto;
		n->out.in = p->key;
		if (bpf_map_update_elem(&conns_out, &reply, &n->out, BPF_NOEXIST) < 0)
			return to_rvsd(d, RVS_PUNT_TABLE_FULL);
	}
	if (bpf_map_update_elem(&conns, &p->key, &n->c, BPF_NOEXIST) < 0) {
		if (!dr)
			bpf_map_delete_elem(&conns_out, &reply);
		return to_rvsd(d, RVS_PUNT_TABLE_FULL);
	}
	bind_dest(pick);
	if (is_active(state))
		move_count(pick->slot, RVS_STATE_NONE, state);
	count(RVS_STAT_CONN_CREATED);
	traffic(svc->id, pick->slot, p->len - p->l3, 0, 1);
	d->addr = n->c.daddr;
	d->port = n->c.dport;
	d->action = ACT_NAT_IN;
	if (dr)
		to_bypassed(d, pick->dest, pick->slot, n->c.method);
	return 0;
}

/* A packet to a service without a connection: IPVS's checks, schedule, open. */
static __always_inline int new_conn(struct pkt *p, struct rvs_settings *s, struct rvs_svc *svc, __u64 now,
				    struct decision *d)
{
	struct pick pick = {};

	if (svc->flags & RVS_SVC_F_USER || svc->sched == RVS_SCHED_USER)
		return to_rvsd(d, RVS_PUNT_SERVICE);
	if (p->proto == IPPROTO_TCP &&
	    ((p->tcp_flags & TCPF_RST) || (!(p->tcp_flags & TCPF_SYN) && !s->sloppy_tcp)))
		return drop(d, RVS_STAT_DROP_NON_SYN);
	if (p->ttl <= 1)
		return drop(d, RVS_STAT_DROP_TTL);
	if (!schedule(svc, p, &pick))
		return drop(d, RVS_STAT_DROP_NO_DEST);
	if (pick.dest->method != RVS_METHOD_MASQ && !bypassed(pick.dest->method))
		return to_rvsd(d, RVS_PUNT_SERVICE);
	return open_conn(p, s, svc, &pick, now, d);
}

/* The decision for a frame the parser returned `parsed` for. */
static __always_inline void decide(struct pkt *p, int parsed, __u32 reason, struct decision *d)
{
	struct rvs_svc_key sk = {};
	struct rvs_settings *s;
	struct rvs_conn *c;
	struct rvs_conn_out *out;
	struct rvs_svc *svc;
	__u32 zero = 0;
	__u64 now;

	d->action = ACT_PASS;
	if (parsed == PARSE_PASS)
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
	now = bpf_ktime_get_ns();
	c = bpf_map_lookup_elem(&conns, &p->key);
	if (c) {
		conn_in(p, s, c, now, d);
		return;
	}
	out = bpf_map_lookup_elem(&conns_out, &p->key);
	if (out) {
		conn_reply(p, s, out, now, d);
		return;
	}
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
		new_conn(p, s, svc, now, d);
		return;
	}
	/* A firewall-mark service's address: rvsd classifies and schedules. */
	{
		__u32 *to = bpf_map_lookup_elem(&addrs, &p->key.dst);

		if (to && (*to & RVS_ADDR_USER_VIP))
			to_rvsd(d, RVS_PUNT_SERVICE);
	}
}

#endif
