// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rvs's kernel data plane: IPVS's per-packet work for NAT, direct-routing and tunnelling
 * services, at tc ingress (rvs_tc) or XDP (rvs_xdp), with the same decisions (lb_decide.h) at
 * both; tunnels get their outer headers from lb_tunnel.h.
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
#define IPPROTO_FRAGMENT_ 44
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10
/* Bytes of a punted frame copied to rvsd at most (a GSO frame at tc is up to 64 KiB). */
#define PUNT_MAX 65536
/* The most header bytes the parser reads: Ethernet, an 802.1Q tag, IPv6, TCP. */
#define PULL_MAX (14 + 4 + 40 + 20)

#include "lb_maps.h"
#include "lb_conn.h"
#include "lb_parse.h"
#include "lb_sched.h"
#include "lb_persist.h"
#include "lb_fullnat.h"
#include "lb_sync.h"
#include "lb_decide.h"
#include "lb_csum.h"
#include "lb_tunnel.h"
#include "lb_mtu.h"
#include "lb_synproxy.h"
#include "lb_tc.h"
#include "lb_xdp.h"

/* The parsed packet, in per-CPU space rather than on the stack: BPF's 512 bytes of stack are
 * for the whole call chain, the scheduler's frame included (see rvs_pick). */
static __always_inline struct pkt *fresh_pkt(void)
{
	__u32 zero = 0;
	struct pkt *p = bpf_map_lookup_elem(&pkt_scratch, &zero);

	if (p)
		__builtin_memset(p, 0, sizeof(*p));
	return p;
}

SEC("tc")
int rvs_tc(struct __sk_buff *skb)
{
	struct pkt *p = fresh_pkt();
	struct decision d = {};
	__u32 reason = RVS_PUNT_OTHER;
	int parsed;

	count(RVS_STAT_RX);
	if (!p)
		return TC_ACT_OK;
	parsed = parse((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, p, &reason);
	if (parsed == PARSE_SHORT && skb->data + PULL_MAX > skb->data_end &&
	    skb->len > skb->data_end - skb->data) {
		/* Headers partly in the fragments: into the linear part, then again. Only then: a
		 * pull copies (and, the skb being a clone, reallocates) the head. */
		bpf_skb_pull_data(skb, skb->len < PULL_MAX ? skb->len : PULL_MAX);
		parsed = parse((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, p,
			       &reason);
	}
	decide(p, parsed, reason, &d);
	return tc_carry_out(skb, p, &d);
}

SEC("xdp")
int rvs_xdp(struct xdp_md *ctx)
{
	struct pkt *p = fresh_pkt();
	struct decision d = {};
	__u32 reason = RVS_PUNT_OTHER;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	int parsed;

	count(RVS_STAT_RX);
	if (!p)
		return XDP_PASS;
	parsed = parse(data, end, end - data, p, &reason);
	decide(p, parsed, reason, &d);
	return xdp_carry_out(ctx, p, &d);
}

/* What one expiry sweep needs in its callback. */
struct sweep {
	__u64 now;
	__u64 expired;
	__u64 next_due; /* the earliest expiry left in the tables (~0: none) */
};

static __always_inline void still_due_at(struct sweep *sw, __u64 expires)
{
	if (expires < sw->next_due)
		sw->next_due = expires;
}

static long expire_one(void *map, struct rvs_conn_key *key, struct rvs_conn *c, struct sweep *sw)
{
	if (c->expires_ns > sw->now) {
		still_due_at(sw, c->expires_ns);
		return 0;
	}
	forget_conn(key, c);
	sw->expired++;
	return 0;
}

/* A template past its timeout goes, unless connections it controls still live: then its timer
 * is re-armed (IPVS's "expire later"). */
static long expire_template(void *map, struct rvs_tpl_key *key, struct rvs_tpl *t, struct sweep *sw)
{
	if (t->expires_ns > sw->now) {
		still_due_at(sw, t->expires_ns);
		return 0;
	}
	if (t->n_control > 0) {
		t->expires_ns = sw->now + (__u64)t->timeout_ms * 1000000ULL;
		still_due_at(sw, t->expires_ns);
		return 0;
	}
	bpf_map_delete_elem(&templates, key);
	return 0;
}

/* The expiry sweep: rvsd runs it (BPF_PROG_TEST_RUN) when an entry may have fallen due, at
 * most once a second; every connection past its timeout leaves the table and its server's
 * counts, as IPVS's connection timers do, then templates past theirs that control no
 * connection. How long after `now` the earliest entry left falls due (~0: the tables are
 * empty) is written over the frame's first 8 bytes, for rvsd to plan its next sweep. A walk
 * costs every bucket of both tables, empty or not. */
SEC("tc")
int rvs_expire(struct __sk_buff *skb)
{
	struct sweep sw = { .now = bpf_ktime_get_ns(), .expired = 0, .next_due = ~0ULL };
	__u32 which = RVS_STAT_EXPIRED;
	__u64 *c;

	bpf_for_each_map_elem(&conns, expire_one, &sw, 0);
	bpf_for_each_map_elem(&templates, expire_template, &sw, 0);
	c = bpf_map_lookup_elem(&stats, &which);
	if (c)
		*c += sw.expired;
	if (sw.next_due != ~0ULL)
		sw.next_due -= sw.now;
	bpf_skb_store_bytes(skb, 0, &sw.next_due, sizeof(sw.next_due), 0);
	return TC_ACT_OK;
}

/* What one drop_entry visit needs in its callback. */
struct drop_visit {
	struct rvs_settings *s;
	__u64 now;
	__u64 dropped;
	__u32 part;
	__u8 left[9]; /* IPVS's todrop_counter, by packets seen */
};

/* Which 32nd of the table a connection belongs to. */
static __always_inline __u32 key_part(struct rvs_conn_key *k)
{
	__u32 h = k->src.w[0] ^ k->src.w[1] ^ k->src.w[2] ^ k->src.w[3] ^ k->dst.w[3];

	h ^= ((__u32)k->sport << 16) | k->dport;
	h *= 0x9e3779b1;
	return h >> 27;
}

/* IPVS's todrop_entry: a connection idle for 60 s that has seen 1 to 8 packets from its
 * client goes one time in that many. */
static __always_inline int takes_entry(struct drop_visit *v, struct rvs_conn *c)
{
	__u64 touched = c->expires_ns - timeout_ns(v->s, c->state);
	__u16 n = c->sync_pkts;
	__u8 *left;

	if (v->now < touched + 60000000000ULL || n == 0 || n > 8)
		return 0;
	left = &v->left[n & 7 ? n & 7 : 8];
	if (*left > 1) {
		(*left)--;
		return 0;
	}
	*left = n;
	return 1;
}

static long drop_one(void *map, struct rvs_conn_key *key, struct rvs_conn *c, struct drop_visit *v)
{
	int goes;

	if (key_part(key) != v->part)
		return 0;
	switch (c->state) {
	case RVS_STATE_SYN_RECV:
	case RVS_STATE_SYNACK:
		goes = key->proto == IPPROTO_TCP;
		break;
	case RVS_STATE_ESTABLISHED:
	case RVS_STATE_UDP:
		goes = takes_entry(v, c);
		break;
	default:
		goes = 0;
	}
	if (goes) {
		forget_conn(key, c);
		v->dropped++;
	}
	return 0;
}

/* IPVS's drop_entry (`ip_vs_random_dropentry`): rvsd runs it (BPF_PROG_TEST_RUN) once a second
 * while its defence says memory is short, with a struct rvs_drop_entries_in after a zeroed
 * Ethernet header naming this second's 32nd of the table. Half-open TCP connections there
 * leave the table and their server's counts; established and UDP ones as takes_entry says. */
SEC("tc")
int rvs_drop_entries(struct __sk_buff *skb)
{
	struct rvs_drop_entries_in in;
	struct drop_visit v = {};
	__u32 zero = 0, which = RVS_STAT_DEFENSE_ENTRIES;
	__u64 *c;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &in, sizeof(in)) < 0)
		return TC_ACT_SHOT;
	v.s = bpf_map_lookup_elem(&settings, &zero);
	if (!v.s)
		return TC_ACT_SHOT;
	v.now = bpf_ktime_get_ns();
	v.part = in.part & 31;
	bpf_for_each_map_elem(&conns, drop_one, &v, 0);
	c = bpf_map_lookup_elem(&stats, &which);
	if (c)
		*c += v.dropped;
	return TC_ACT_OK;
}

/* A sync backup's install of one connection: rvsd runs it (BPF_PROG_TEST_RUN) with a zeroed
 * Ethernet header and a struct rvs_sync_in; the answer is RVS_SYNC_IN_*. */
SEC("tc")
int rvs_sync_in(struct __sk_buff *skb)
{
	struct rvs_sync_in in;

	if (bpf_skb_load_bytes(skb, 14, &in, sizeof(in)) < 0)
		return RVS_SYNC_IN_BAD;
	return sync_install(&in);
}
