// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rvs's kernel data plane: IPVS's per-packet work for NAT services, at tc ingress.
 *
 * A frame of a known connection is rewritten and redirected (both directions); a frame to a
 * service opens a connection, its real server chosen here by the service's scheduler; a frame
 * that is ours but needs what this program does not do (ICMP errors, fragments, IP options, a
 * service rvsd schedules, a full table) is copied to rvsd through the `punt` ring buffer and
 * dropped here. Every other frame goes on to the kernel untouched.
 *
 * The tables come from rvsd (services, real servers, the TCP state table and timeouts); the
 * connection table is a plain hash (never LRU: IPVS never evicts a live connection) which rvsd
 * expires and lists.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "rvs_lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_8021Q_ 0x8100
#define AF_INET_ 2
#define AF_INET6_ 10
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1fff
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10
/* Bytes of a punted frame copied to rvsd at most. */
#define PUNT_MAX 2048

/* Sizes are set by rvsd before loading (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rvs_svc_key);
	__type(value, struct rvs_svc);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct rvs_svc_dests);
} svc_dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rvs_addr);
	__type(value, __u32);
} addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} sched_cursor SEC(".maps");

/* wrr sequences: service id * RVS_WRR_SEQ + step -> the step. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096 * RVS_WRR_SEQ);
	__type(key, __u32);
	__type(value, struct rvs_wrr_step);
} wrr_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct rvs_dest);
} dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct rvs_dest_conns);
} dest_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rvs_conn_key);
	__type(value, struct rvs_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rvs_conn_key);
	__type(value, struct rvs_conn_out);
} conns_out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_settings);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_STATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} punt SEC(".maps");

/* The header of a punted frame in the `punt` ring buffer; the frame's bytes follow. */
struct punt_hdr {
	__u32 ifindex;
	__u32 len;    /* bytes that follow */
	__u32 wire;   /* the frame's length on the wire */
	__u32 reason; /* enum rvs_punt */
};

/* Scratch space for a punted frame (one per CPU). */
struct punt_buf {
	struct punt_hdr hdr;
	__u8 data[PUNT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct punt_buf);
} punt_scratch SEC(".maps");

/* What the parser learned of a frame: offsets from the frame's start, and the tuple. */
struct pkt {
	__u32 l3;
	__u32 l4;
	__u32 len;    /* the frame's length */
	__u8 v6;
	__u8 proto;
	__u8 tcp_flags;
	__u8 ttl;
	struct rvs_conn_key key; /* src, dst, ports, proto as the packet carries them */
};

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &which);

	if (c)
		*c += 1;
}

static __always_inline void map_v4(struct rvs_addr *a, __be32 v4)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = bpf_htonl(0xffff);
	a->w[3] = v4;
}

/* Parses Ethernet (one optional 802.1Q tag), IPv4 or IPv6 and the TCP/UDP ports.
 * Returns 0 when the frame is a TCP or UDP packet the program can work on, a TC_ACT_* value
 * (>= 0 ... see callers) otherwise encoded as: 1 not ours (pass), 2 punt with *reason set. */
#define PARSE_OK 0
#define PARSE_PASS 1
#define PARSE_PUNT 2
#define PARSE_DROP 3

static __always_inline int parse(struct __sk_buff *skb, struct pkt *p, __u32 *reason)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 type;

	if ((void *)(eth + 1) > end)
		return PARSE_PASS;
	type = eth->h_proto;
	if (type == bpf_htons(ETH_P_8021Q_)) {
		__be16 *inner = data + off + 2;

		if ((void *)(inner + 1) > end)
			return PARSE_PASS;
		type = *inner;
		off += 4;
	}
	p->l3 = off;
	p->len = skb->len;
	__builtin_memset(&p->key, 0, sizeof(p->key));
	if (type == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > end)
			return PARSE_PASS;
		if (ip->version != 4 || ip->ihl < 5)
			return PARSE_PASS;
		p->v6 = 0;
		p->proto = ip->protocol;
		p->ttl = ip->ttl;
		map_v4(&p->key.src, ip->saddr);
		map_v4(&p->key.dst, ip->daddr);
		if (ip->ihl != 5) {
			*reason = RVS_PUNT_IP_OPTIONS;
			return PARSE_PUNT;
		}
		if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_)) {
			*reason = RVS_PUNT_FRAGMENT;
			return PARSE_PUNT;
		}
		p->l4 = off + sizeof(*ip);
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > end)
			return PARSE_PASS;
		if (ip6->version != 6)
			return PARSE_PASS;
		p->v6 = 1;
		p->proto = ip6->nexthdr;
		p->ttl = ip6->hop_limit;
		__builtin_memcpy(&p->key.src, &ip6->saddr, 16);
		__builtin_memcpy(&p->key.dst, &ip6->daddr, 16);
		p->l4 = off + sizeof(*ip6);
	} else {
		return PARSE_PASS;
	}
	p->key.proto = p->proto;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + p->l4;

		if ((void *)(tcp + 1) > end)
			return PARSE_PASS;
		if (tcp->doff < 5)
			return PARSE_DROP;
		p->key.sport = tcp->source;
		p->key.dport = tcp->dest;
		p->tcp_flags = ((__u8 *)tcp)[13];
		return PARSE_OK;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr *udp = data + p->l4;

		if ((void *)(udp + 1) > end)
			return PARSE_PASS;
		p->key.sport = udp->source;
		p->key.dport = udp->dest;
		p->tcp_flags = 0;
		return PARSE_OK;
	}
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		*reason = RVS_PUNT_ICMP;
		return PARSE_PUNT;
	}
	return PARSE_PASS;
}

/* Copies the frame to rvsd and drops it here. */
static __always_inline int punt_frame(struct __sk_buff *skb, __u32 reason)
{
	__u32 zero = 0;
	struct punt_buf *buf = bpf_map_lookup_elem(&punt_scratch, &zero);
	__u32 len = skb->len;

	count(RVS_STAT_PUNT + (reason < RVS_PUNT_REASONS ? reason : RVS_PUNT_OTHER));
	if (!buf)
		return TC_ACT_SHOT;
	if (len > PUNT_MAX)
		len = PUNT_MAX;
	if (len < ETH_HLEN)
		return TC_ACT_SHOT;
	buf->hdr.ifindex = skb->ingress_ifindex;
	buf->hdr.len = len;
	buf->hdr.wire = skb->len;
	buf->hdr.reason = reason;
	if (bpf_skb_load_bytes(skb, 0, buf->data, len & (PUNT_MAX - 1 | PUNT_MAX)) < 0)
		return TC_ACT_SHOT;
	bpf_ringbuf_output(&punt, buf, sizeof(buf->hdr) + (len & (PUNT_MAX - 1 | PUNT_MAX)), 0);
	return TC_ACT_SHOT;
}

/* Whether a state counts as active (IPVS: only TCP ESTABLISHED). */
static __always_inline int is_active(__u8 state)
{
	return state == RVS_STATE_ESTABLISHED;
}

/* Moves a real server's count from one state's column to another's (active/inactive). */
static __always_inline void move_count(__u32 dest, __u8 from, __u8 to)
{
	struct rvs_dest_conns *c;

	if (is_active(from) == is_active(to))
		return;
	c = bpf_map_lookup_elem(&dest_conns, &dest);
	if (!c)
		return;
	if (is_active(to)) {
		__sync_fetch_and_add(&c->active, 1);
		__sync_fetch_and_add(&c->inactive, -1);
	} else {
		__sync_fetch_and_add(&c->active, -1);
		__sync_fetch_and_add(&c->inactive, 1);
	}
}

/* IPVS's overhead: active * 256 + inactive. */
static __always_inline __u64 overhead(struct rvs_dest_conns *c)
{
	return ((__u64)c->active << 8) + c->inactive;
}

/* The state after a segment with `flags`; dir 0 INPUT, 1 OUTPUT, 2 INPUT-ONLY. */
static __always_inline __u8 next_state(struct rvs_settings *s, __u8 state, __u32 dir, __u8 flags)
{
	__u32 ev;

	if (flags & TCPF_RST)
		ev = 3;
	else if (flags & TCPF_SYN)
		ev = 0;
	else if (flags & TCPF_FIN)
		ev = 1;
	else if (flags & TCPF_ACK)
		ev = 2;
	else
		return RVS_STATE_CLOSE;
	if (state >= 11 || dir > 2)
		return state;
	return s->tcp_next[dir % 3][ev & 3][state & (RVS_STATE_SLOTS - 1)];
}

static __always_inline __u64 timeout_ns(struct rvs_settings *s, __u8 state)
{
	return (__u64)s->timeout_ms[state & (RVS_STATE_SLOTS - 1)] * 1000000ULL;
}

struct pick {
	__u32 index; /* in the service's dests */
	__u32 slot;
	struct rvs_dest *dest;
	struct rvs_dest_conns *conns;
};

/* Looks up the index-th real server of `sd`; NULL when out of range. */
static __always_inline int dest_at(struct rvs_svc_dests *sd, __u32 i, struct pick *out)
{
	__u32 slot;

	if (i >= RVS_MAX_DESTS || i >= sd->count)
		return 0;
	slot = sd->slot[i];
	out->index = i;
	out->slot = slot;
	out->dest = bpf_map_lookup_elem(&dests, &slot);
	out->conns = bpf_map_lookup_elem(&dest_conns, &slot);
	return out->dest && out->conns;
}

static __always_inline int usable(struct pick *d)
{
	return d->dest->available && d->dest->weight > 0 && !d->conns->overloaded;
}

/* rr (ip_vs_rr_schedule): the first usable server from the cursor's start position on; the
 * cursor then starts after it and names it. */
static __always_inline int sched_rr(struct rvs_svc *svc, struct rvs_svc_dests *sd, struct pick *out)
{
	__u64 *cursor = bpf_map_lookup_elem(&sched_cursor, &svc->id);
	__u32 n = sd->count, start, k;
	__u64 word;

	if (!cursor || n == 0 || n > RVS_MAX_DESTS)
		return 0;
	word = *cursor;
	start = (__u32)(word >> 33);
	for (k = 0; k < RVS_MAX_DESTS; k++) {
		__u32 at;

		if (k >= n)
			break;
		at = (start + k) % n;
		if (dest_at(sd, at, out) && usable(out)) {
			__u64 next = ((__u64)(at + 1) << 33) | RVS_CURSOR_HAS_LOW | out->dest->id;

			__sync_val_compare_and_swap(cursor, word, next);
			return 1;
		}
	}
	return 0;
}

/* What the wrr search callbacks share. */
struct wrr_search {
	struct rvs_svc_dests *sd;
	__u32 base;   /* the service's first step in wrr_seq */
	__u32 n;      /* steps */
	__u32 from;   /* first step to look at */
	__u32 wrap;   /* look at steps modulo n */
	__u32 found;  /* step + 1, 0 while none */
	__u32 level;
	__u32 pos;
	__u32 cw;     /* for the partition search */
};

/* Whether step q of the sequence is usable: its server not overloaded and still of at least
 * the step's weight. */
static __always_inline int wrr_usable(struct wrr_search *ws, __u32 q, __u32 *level, __u32 *pos)
{
	__u32 key = ws->base + q;
	struct rvs_wrr_step *st = bpf_map_lookup_elem(&wrr_seq, &key);
	struct pick d = {};

	if (!st)
		return 0;
	if (!dest_at(ws->sd, st->pos, &d) || !d.dest->available || d.conns->overloaded)
		return 0;
	if (d.dest->weight < st->level)
		return 0;
	*level = st->level;
	*pos = st->pos;
	return 1;
}

static long wrr_scan(__u32 i, struct wrr_search *ws)
{
	__u32 q = ws->from + i;
	__u32 level, pos;

	if (ws->wrap) {
		if (i >= ws->n || ws->n == 0)
			return 1;
		q %= ws->n;
	}
	if (!ws->wrap && q >= ws->n)
		return 1;
	if (wrr_usable(ws, q, &level, &pos)) {
		ws->found = q + 1;
		ws->level = level;
		ws->pos = pos;
		return 1;
	}
	return 0;
}

/* The first step whose weight is at most cw (steps go down by weight). */
static long wrr_partition(__u32 i, struct wrr_search *ws)
{
	__u32 key = ws->base + i;
	struct rvs_wrr_step *st;

	if (i >= ws->n)
		return 1;
	st = bpf_map_lookup_elem(&wrr_seq, &key);
	if (!st || st->level <= ws->cw)
		return 1;
	ws->from = i + 1;
	return 0;
}

/* wrr (ip_vs_wrr_schedule) over the sequence rvsd built from the engine's: the first usable
 * step after the cursor. From the head or above the lowest weight the search ends with the
 * sequence and a miss goes back to the head; from a pick at the lowest weight it goes round
 * once and a miss keeps the cursor (rvs-engine's WrrTable::follow). */
static __always_inline int sched_wrr(struct rvs_svc *svc, struct rvs_svc_dests *sd, struct pick *out)
{
	__u64 *cursor = bpf_map_lookup_elem(&sched_cursor, &svc->id);
	struct wrr_search ws = {};
	__u64 word, next;
	__u32 cw, cl = 0;
	int has_cl;

	if (!cursor || sd->wrr_len == 0 || sd->wrr_len > RVS_WRR_SEQ || sd->wrr_mw == 0)
		return 0;
	word = *cursor;
	cw = (__u32)(word >> 33);
	has_cl = (word & RVS_CURSOR_HAS_LOW) && (__u32)word < sd->wrr_len;
	if (has_cl)
		cl = (__u32)word;
	ws.sd = sd;
	ws.base = svc->id * RVS_WRR_SEQ;
	ws.n = sd->wrr_len;
	if (has_cl && cw <= sd->wrr_di) {
		ws.from = cl + 1;
		ws.wrap = 1;
	} else if (has_cl) {
		ws.from = cl + 1;
	} else {
		ws.cw = cw;
		bpf_loop(RVS_WRR_SEQ, wrr_partition, &ws, 0);
	}
	bpf_loop(RVS_WRR_SEQ, wrr_scan, &ws, 0);
	if (!ws.found) {
		if (!(has_cl && cw <= sd->wrr_di))
			__sync_val_compare_and_swap(cursor, word, (__u64)sd->wrr_mw << 33);
		return 0;
	}
	next = ((__u64)ws.level << 33) | RVS_CURSOR_HAS_LOW | (ws.found - 1);
	__sync_val_compare_and_swap(cursor, word, next);
	return dest_at(sd, ws.pos, out);
}

/* lc, wlc, sed, nq, fo, ovf: one pass over the servers, IPVS's comparisons. */
static __always_inline int sched_scan(struct rvs_svc *svc, struct rvs_svc_dests *sd, struct pick *out)
{
	struct pick best = {}, d = {};
	__u64 best_oh = 0;
	__u32 i, found = 0;

	for (i = 0; i < RVS_MAX_DESTS; i++) {
		__u64 oh = 0;

		if (i >= sd->count)
			break;
		if (!dest_at(sd, i, &d) || !d.dest->available)
			continue;
		if (d.conns->overloaded)
			continue;
		switch (svc->sched) {
		case RVS_SCHED_LC:
			/* weight > 0, least overhead; first among equals. */
			if (d.dest->weight == 0)
				continue;
			oh = overhead(d.conns);
			if (!found || oh < best_oh)
				goto take;
			continue;
		case RVS_SCHED_WLC:
		case RVS_SCHED_SED:
		case RVS_SCHED_NQ:
			if (svc->sched == RVS_SCHED_NQ && d.dest->weight > 0 && d.conns->active == 0) {
				*out = d;
				return 1;
			}
			oh = svc->sched == RVS_SCHED_WLC ? overhead(d.conns) : (__u64)d.conns->active + 1;
			if (!found) {
				if (d.dest->weight == 0)
					continue;
				goto take;
			}
			/* loh * dw > doh * lw: weight-0 servers never win. */
			if (best_oh * d.dest->weight > oh * best.dest->weight)
				goto take;
			continue;
		case RVS_SCHED_FO:
			/* the highest weight; first among equals. */
			if (d.dest->weight == 0)
				continue;
			if (!found || d.dest->weight > best.dest->weight)
				goto take;
			continue;
		case RVS_SCHED_OVF:
			/* among servers whose active connections do not exceed their weight, the
			 * highest weight; first among equals. */
			if (d.dest->weight == 0 || d.conns->active > d.dest->weight)
				continue;
			if (!found || d.dest->weight > best.dest->weight)
				goto take;
			continue;
		default:
			return 0;
		}
take:
		best = d;
		best_oh = oh;
		found = 1;
	}
	if (found)
		*out = best;
	return found;
}

static __always_inline int schedule(struct rvs_svc *svc, struct pick *out)
{
	struct rvs_svc_dests *sd = bpf_map_lookup_elem(&svc_dests, &svc->id);

	if (!sd)
		return 0;
	switch (svc->sched) {
	case RVS_SCHED_RR:
		return sched_rr(svc, sd, out);
	case RVS_SCHED_WRR:
		return sched_wrr(svc, sd, out);
	default:
		return sched_scan(svc, sd, out);
	}
}

/* IPVS's threshold check when a connection binds to a server. */
static __always_inline void bind_dest(struct pick *d)
{
	__u32 total;

	__sync_fetch_and_add(&d->conns->inactive, 1);
	if (d->dest->u_threshold == 0)
		return;
	total = d->conns->active + d->conns->inactive;
	if (total >= d->dest->u_threshold)
		d->conns->overloaded = 1;
}

/* Rewrites one 4-byte word of an IPv4 address and fixes the IP and L4 checksums. */
static __always_inline int rewrite_v4_addr(struct __sk_buff *skb, struct pkt *p, __u32 at,
					   __be32 from, __be32 to, __u32 l4_csum)
{
	if (bpf_skb_store_bytes(skb, at, &to, 4, 0) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), from, to, 4) < 0)
		return -1;
	if (l4_csum && bpf_l4_csum_replace(skb, l4_csum, from, to,
					   BPF_F_PSEUDO_HDR | 4 |
						   (p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)) < 0)
		return -1;
	return 0;
}

/* The L4 checksum's offset, or 0 for an IPv4 UDP datagram without one. */
static __always_inline __u32 l4_csum_off(struct __sk_buff *skb, struct pkt *p)
{
	if (p->proto == IPPROTO_TCP)
		return p->l4 + offsetof(struct tcphdr, check);
	if (!p->v6) {
		__u16 csum = 0;

		if (bpf_skb_load_bytes(skb, p->l4 + offsetof(struct udphdr, check), &csum, 2) < 0)
			return 0;
		if (csum == 0)
			return 0;
	}
	return p->l4 + offsetof(struct udphdr, check);
}

/* Rewrites the destination (to the real server: `dst` true) or the source (back to the
 * virtual service) address and port, checksums kept right. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, struct pkt *p, int dst,
				       const struct rvs_addr *addr, __be16 port)
{
	__u32 csum = l4_csum_off(skb, p);
	__u32 port_off = p->l4 + (dst ? 2 : 0);
	__be16 old_port = dst ? p->key.dport : p->key.sport;
	const struct rvs_addr *old = dst ? &p->key.dst : &p->key.src;

	if (!p->v6) {
		__u32 at = p->l3 + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));

		if (old->w[3] != addr->w[3] &&
		    rewrite_v4_addr(skb, p, at, old->w[3], addr->w[3], csum) < 0)
			return -1;
	} else {
		__u32 at = p->l3 + (dst ? offsetof(struct ipv6hdr, daddr) : offsetof(struct ipv6hdr, saddr));
		__s64 diff = bpf_csum_diff((__be32 *)old->w, 16, (__be32 *)addr->w, 16, 0);

		if (bpf_skb_store_bytes(skb, at, addr->w, 16, 0) < 0)
			return -1;
		if (csum && bpf_l4_csum_replace(skb, csum, 0, diff, BPF_F_PSEUDO_HDR) < 0)
			return -1;
	}
	if (old_port != port) {
		if (bpf_skb_store_bytes(skb, port_off, &port, 2, 0) < 0)
			return -1;
		if (csum && bpf_l4_csum_replace(skb, csum, old_port, port,
						2 | (p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)) < 0)
			return -1;
	}
	return 0;
}

/* Sends the packet on toward `dst` (the next hop): the frame redirected with the FIB's MAC
 * addresses when it has a route and a neighbour, else handed to the kernel, which resolves
 * and forwards it. NAT decrements the TTL/hop limit; direct routing (`keep_ttl`) sends the
 * packet exactly as it came, as IPVS's DR does. */
static __always_inline int forward(struct __sk_buff *skb, struct pkt *p, const struct rvs_addr *src,
				   const struct rvs_addr *dst, int keep_ttl)
{
	struct bpf_fib_lookup fib = {};
	void *data, *end;
	struct ethhdr *eth;
	long rc;

	fib.ifindex = skb->ingress_ifindex;
	fib.l4_protocol = p->proto;
	fib.tot_len = skb->len - p->l3;
	if (!p->v6) {
		fib.family = AF_INET_;
		fib.ipv4_src = src->w[3];
		fib.ipv4_dst = dst->w[3];
	} else {
		fib.family = AF_INET6_;
		__builtin_memcpy(fib.ipv6_src, src->w, 16);
		__builtin_memcpy(fib.ipv6_dst, dst->w, 16);
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(RVS_STAT_FIB_PASS);
		return TC_ACT_OK;
	}
	if (keep_ttl) {
		/* nothing to change in the IP header */
	} else if (!p->v6) {
		__u16 old, new;
		__u8 ttl = p->ttl - 1;

		if (bpf_skb_load_bytes(skb, p->l3 + 8, &old, 2) < 0)
			return TC_ACT_SHOT;
		new = old;
		((__u8 *)&new)[0] = ttl;
		if (bpf_skb_store_bytes(skb, p->l3 + 8, &new, 2, 0) < 0)
			return TC_ACT_SHOT;
		if (bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), old, new, 2) < 0)
			return TC_ACT_SHOT;
	} else {
		__u8 hl = p->ttl - 1;

		if (bpf_skb_store_bytes(skb, p->l3 + offsetof(struct ipv6hdr, hop_limit), &hl, 1, 0) < 0)
			return TC_ACT_SHOT;
	}
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_SHOT;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	count(RVS_STAT_FORWARDED);
	return bpf_redirect(fib.ifindex, 0);
}

/* A packet of a known connection from the client's side. */
static __always_inline int conn_in(struct __sk_buff *skb, struct pkt *p, struct rvs_settings *s,
				   struct rvs_conn *c, __u64 now)
{
	__u8 state = c->state;

	if (c->method != RVS_METHOD_MASQ && c->method != RVS_METHOD_ROUTE)
		return punt_frame(skb, RVS_PUNT_CONN);
	if (p->ttl <= 1) {
		count(RVS_STAT_DROP_TTL);
		return TC_ACT_SHOT;
	}
	if (p->proto == IPPROTO_TCP) {
		__u8 next = next_state(s, state, (c->flags & RVS_CONN_F_NOOUTPUT) ? 2 : 0, p->tcp_flags);

		if (next != state) {
			c->state = next;
			move_count(c->dest, state, next);
			state = next;
		}
	}
	c->expires_ns = now + timeout_ns(s, state);
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, p->len);
	if (c->method == RVS_METHOD_ROUTE)
		return forward(skb, p, &p->key.src, &c->daddr, 1);
	if (nat_rewrite(skb, p, 1, &c->daddr, c->dport) < 0)
		return TC_ACT_SHOT;
	return forward(skb, p, &p->key.src, &c->daddr, 0);
}

/* A reply of a NAT connection from its real server. */
static __always_inline int conn_reply(struct __sk_buff *skb, struct pkt *p, struct rvs_settings *s,
				      struct rvs_conn_out *out, __u64 now)
{
	struct rvs_conn *c = bpf_map_lookup_elem(&conns, &out->in);
	__u8 state;

	if (!c)
		return TC_ACT_OK;
	if (p->ttl <= 1) {
		count(RVS_STAT_DROP_TTL);
		return TC_ACT_SHOT;
	}
	state = c->state;
	if (p->proto == IPPROTO_TCP) {
		__u8 next = next_state(s, state, 1, p->tcp_flags);

		if (next != state) {
			c->state = next;
			move_count(c->dest, state, next);
			state = next;
		}
	}
	c->expires_ns = now + timeout_ns(s, state);
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, p->len);
	if (nat_rewrite(skb, p, 0, &out->in.dst, out->in.dport) < 0)
		return TC_ACT_SHOT;
	return forward(skb, p, &out->in.dst, &p->key.dst, 0);
}

/* A new direct-routing connection: tracked in the client's direction only (IPVS's
 * INPUT-ONLY states), the packet sent to the real server's MAC unchanged. */
static __always_inline int new_conn_dr(struct __sk_buff *skb, struct pkt *p, struct rvs_settings *s,
				       struct rvs_svc *svc, struct pick *d, __u64 now)
{
	struct rvs_conn c = {};
	__u8 state;

	state = p->proto == IPPROTO_TCP ? next_state(s, RVS_STATE_NONE, 2, p->tcp_flags) : RVS_STATE_UDP;
	c.daddr = d->dest->addr;
	c.dport = p->key.dport;
	c.state = state;
	c.flags = RVS_CONN_F_NOOUTPUT;
	c.dest = d->slot;
	c.svc = svc->id;
	c.method = RVS_METHOD_ROUTE;
	c.expires_ns = now + timeout_ns(s, state);
	c.packets = 1;
	c.bytes = p->len;
	if (bpf_map_update_elem(&conns, &p->key, &c, BPF_NOEXIST) < 0)
		return punt_frame(skb, RVS_PUNT_TABLE_FULL);
	bind_dest(d);
	if (is_active(state))
		move_count(d->slot, RVS_STATE_NONE, state);
	count(RVS_STAT_CONN_CREATED);
	return forward(skb, p, &p->key.src, &c.daddr, 1);
}

/* A packet to a service without a connection: schedule, open, forward. */
static __always_inline int new_conn(struct __sk_buff *skb, struct pkt *p, struct rvs_settings *s,
				    struct rvs_svc *svc, __u64 now)
{
	struct rvs_conn c = {};
	struct rvs_conn_out out = {};
	struct rvs_conn_key reply = {};
	struct pick d = {};
	__u8 state;

	if (svc->flags & RVS_SVC_F_USER || svc->sched == RVS_SCHED_USER)
		return punt_frame(skb, RVS_PUNT_SERVICE);
	if (p->proto == IPPROTO_TCP &&
	    ((p->tcp_flags & TCPF_RST) || (!(p->tcp_flags & TCPF_SYN) && !s->sloppy_tcp))) {
		count(RVS_STAT_DROP_NON_SYN);
		return TC_ACT_SHOT;
	}
	if (p->ttl <= 1) {
		count(RVS_STAT_DROP_TTL);
		return TC_ACT_SHOT;
	}
	if (!schedule(svc, &d)) {
		count(RVS_STAT_DROP_NO_DEST);
		return TC_ACT_SHOT;
	}
	if (d.dest->method == RVS_METHOD_ROUTE)
		return new_conn_dr(skb, p, s, svc, &d, now);
	if (d.dest->method != RVS_METHOD_MASQ)
		return punt_frame(skb, RVS_PUNT_SERVICE);
	state = p->proto == IPPROTO_TCP ? next_state(s, RVS_STATE_NONE, 0, p->tcp_flags) : RVS_STATE_UDP;
	c.daddr = d.dest->addr;
	c.dport = d.dest->port ? d.dest->port : p->key.dport;
	c.state = state;
	c.dest = d.slot;
	c.svc = svc->id;
	c.method = RVS_METHOD_MASQ;
	c.expires_ns = now + timeout_ns(s, state);
	c.packets = 1;
	c.bytes = p->len;
	reply.src = c.daddr;
	reply.dst = p->key.src;
	reply.sport = c.dport;
	reply.dport = p->key.sport;
	reply.proto = p->proto;
	out.in = p->key;
	if (bpf_map_update_elem(&conns_out, &reply, &out, BPF_NOEXIST) < 0)
		return punt_frame(skb, RVS_PUNT_TABLE_FULL);
	if (bpf_map_update_elem(&conns, &p->key, &c, BPF_NOEXIST) < 0) {
		bpf_map_delete_elem(&conns_out, &reply);
		return punt_frame(skb, RVS_PUNT_TABLE_FULL);
	}
	bind_dest(&d);
	if (is_active(state))
		move_count(d.slot, RVS_STATE_NONE, state);
	count(RVS_STAT_CONN_CREATED);
	if (nat_rewrite(skb, p, 1, &c.daddr, c.dport) < 0)
		return TC_ACT_SHOT;
	return forward(skb, p, &p->key.src, &c.daddr, 0);
}

SEC("tc")
int rvs_tc(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct rvs_svc_key sk = {};
	struct rvs_settings *s;
	struct rvs_conn *c;
	struct rvs_conn_out *out;
	struct rvs_svc *svc;
	__u32 zero = 0, reason = RVS_PUNT_OTHER;
	__u64 now;
	int r;

	count(RVS_STAT_RX);
	if (skb->data + 14 + 40 + 20 > skb->data_end)
		bpf_skb_pull_data(skb, 14 + 4 + 40 + 20);
	r = parse(skb, &p, &reason);
	if (r == PARSE_PASS) {
		count(RVS_STAT_PASSED);
		return TC_ACT_OK;
	}
	if (r == PARSE_DROP) {
		count(RVS_STAT_DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	s = bpf_map_lookup_elem(&settings, &zero);
	if (!s)
		return TC_ACT_OK;
	if (r == PARSE_PUNT) {
		/* Ours only if it goes to a virtual address or comes from a NAT real server. */
		__u32 *to = bpf_map_lookup_elem(&addrs, &p.key.dst);
		__u32 *from = bpf_map_lookup_elem(&addrs, &p.key.src);

		if ((to && (*to & RVS_ADDR_VIP)) || (from && (*from & RVS_ADDR_NAT_DEST)))
			return punt_frame(skb, reason);
		count(RVS_STAT_PASSED);
		return TC_ACT_OK;
	}
	now = bpf_ktime_get_ns();
	c = bpf_map_lookup_elem(&conns, &p.key);
	if (c)
		return conn_in(skb, &p, s, c, now);
	out = bpf_map_lookup_elem(&conns_out, &p.key);
	if (out)
		return conn_reply(skb, &p, s, out, now);
	sk.addr = p.key.dst;
	sk.port = p.key.dport;
	sk.proto = p.proto;
	svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc) {
		sk.port = 0;
		svc = bpf_map_lookup_elem(&services, &sk);
	}
	if (!svc) {
		count(RVS_STAT_PASSED);
		return TC_ACT_OK;
	}
	return new_conn(skb, &p, s, svc, now);
}

/* What one expiry sweep needs in its callback. */
struct sweep {
	__u64 now;
	__u64 expired;
};

/* IPVS's unbind: the connection leaves its server's counts, and the server's overload mark
 * clears below the lower threshold (3/4 of the upper one when no lower one is set). */
static __always_inline void unbind_dest(__u32 slot, __u8 state)
{
	struct rvs_dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	struct rvs_dest *d = bpf_map_lookup_elem(&dests, &slot);
	__u32 total;

	if (!c)
		return;
	if (is_active(state))
		__sync_fetch_and_add(&c->active, -1);
	else
		__sync_fetch_and_add(&c->inactive, -1);
	if (!c->overloaded || !d)
		return;
	total = c->active + c->inactive;
	if (d->l_threshold) {
		if (total < d->l_threshold)
			c->overloaded = 0;
	} else if (d->u_threshold) {
		if (total * 4 < d->u_threshold * 3)
			c->overloaded = 0;
	} else {
		c->overloaded = 0;
	}
}

static long expire_one(void *map, struct rvs_conn_key *key, struct rvs_conn *c, struct sweep *sw)
{
	if (c->expires_ns > sw->now)
		return 0;
	if (c->method == RVS_METHOD_MASQ) {
		struct rvs_conn_key reply = {};

		reply.src = c->daddr;
		reply.dst = key->src;
		reply.sport = c->dport;
		reply.dport = key->sport;
		reply.proto = key->proto;
		bpf_map_delete_elem(&conns_out, &reply);
	}
	unbind_dest(c->dest, c->state);
	bpf_map_delete_elem(&conns, key);
	sw->expired++;
	return 0;
}

/* The expiry sweep: rvsd runs it (BPF_PROG_TEST_RUN) about once a second; every connection
 * past its timeout leaves the table and its server's counts, as IPVS's connection timers do. */
SEC("tc")
int rvs_expire(struct __sk_buff *skb)
{
	struct sweep sw = { .now = bpf_ktime_get_ns(), .expired = 0 };
	__u32 which = RVS_STAT_EXPIRED;
	__u64 *c;

	bpf_for_each_map_elem(&conns, expire_one, &sw, 0);
	c = bpf_map_lookup_elem(&stats, &which);
	if (c)
		*c += sw.expired;
	return TC_ACT_OK;
}
