/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The SYN proxy in the program (services published with RVS_SVC_F_SYNPROXY, whose
 * connections rvsd's engine keeps), at tc:
 * - a SYN without a connection is answered here with a SYN cookie of the kernel's
 *   (bpf_tcp_raw_gen_syncookie_*), routed to the client like the director's other packets (a
 *   spoofed source without a route is dropped), so a flood of them never leaves the kernel;
 * - an ACK whose cookie the kernel checks (bpf_tcp_raw_check_syncookie_*) goes to rvsd marked
 *   checked, which opens the connection to the real server as for its own cookies (rvs-engine's
 *   synproxy);
 * - any other segment of such a service goes to rvsd as for a service it schedules.
 * The SYN-ACK offers an MSS only, as the engine's does. XDP does the same (lb_xdp.h), but
 * leaves a SYN whose client has no known MAC address yet to rvsd.
 * Once the real server has answered, rvsd hands a NAT connection back to the program
 * (RVS_CONN_F_SEQ_SHIFT): its segments are then forwarded here, each with one number shifted
 * (seq_field below). */
#ifndef RVS_LB_SYNPROXY_H
#define RVS_LB_SYNPROXY_H

#define TH_MAX 60
#define TCP_MSS_OPT 2
#define TCP_NOP_OPT 1

/* The TCP header of the SYN and of the SYN-ACK made of it (per CPU: larger than the stack
 * should hold). */
struct synack_scratch {
	__u8 old[TH_MAX];
	__u8 new[TH_MAX];
	struct bpf_fib_lookup fib; /* the way back to the client */
};

PERCPU_SCRATCH(synack_scratch, struct synack_scratch)

/* Writes into `h->new` the SYN-ACK header answering the SYN header in `h->old` (`th_len`
 * bytes, 20 to 60): ports swapped, the cookie as sequence number, the SYN acknowledged, an MSS
 * option then no-operations in the option space, the window at 65535 without scaling. The
 * checksum field is left as it was (the caller updates it from the difference). */
static __always_inline void synack_header(struct synack_scratch *h, __u32 th_len, __u32 cookie,
					  __u16 mss)
{
	__u32 isn = (__u32)h->old[4] << 24 | (__u32)h->old[5] << 16 | (__u32)h->old[6] << 8 |
		    h->old[7];
	__u32 ack = isn + 1;

	__builtin_memcpy(h->new, h->old, TH_MAX);
	h->new[0] = h->old[2];
	h->new[1] = h->old[3];
	h->new[2] = h->old[0];
	h->new[3] = h->old[1];
	h->new[4] = cookie >> 24;
	h->new[5] = cookie >> 16;
	h->new[6] = cookie >> 8;
	h->new[7] = cookie;
	h->new[8] = ack >> 24;
	h->new[9] = ack >> 16;
	h->new[10] = ack >> 8;
	h->new[11] = ack;
	h->new[12] = (__u8)((th_len / 4) << 4);
	h->new[13] = TCPF_SYN | TCPF_ACK;
	h->new[14] = 0xff;
	h->new[15] = 0xff;
	h->new[18] = 0;
	h->new[19] = 0;
	/* The whole option space (only th_len bytes of the header are sent). */
	__builtin_memset(h->new + 20, TCP_NOP_OPT, TH_MAX - 20);
	if (th_len >= 24) {
		h->new[20] = TCP_MSS_OPT;
		h->new[21] = 4;
		h->new[22] = mss >> 8;
		h->new[23] = mss;
	}
}

/* The SYN's TCP header length, checked to lie in the frame (20 to 60), or 0; 0 too when the
 * SYN carries data (rvsd answers that one). */
static __always_inline __u32 syn_header_len(void *data, void *end, struct pkt *p)
{
	struct tcphdr *th = data + (p->l4 & 0x3ff);
	__u32 th_len, ip_len;

	if ((void *)(th + 1) > end)
		return 0;
	th_len = (__u32)th->doff * 4;
	if (th_len < 20 || th_len > TH_MAX || (void *)th + th_len > end)
		return 0;
	ip_len = p->l4 - p->l3 + th_len;
	if (!p->v6) {
		struct iphdr *ip = data + (p->l3 & 0x1f);

		if ((void *)(ip + 1) > end || bpf_ntohs(ip->tot_len) != ip_len)
			return 0;
	} else {
		struct ipv6hdr *ip6 = data + (p->l3 & 0x1f);

		if ((void *)(ip6 + 1) > end || bpf_ntohs(ip6->payload_len) + 40 != ip_len)
			return 0;
	}
	return th_len;
}

/* The kernel's cookie (low 32 bits) with its MSS (high 32) for the SYN at `data`, whose TCP
 * header (`th_len` bytes, 20 to 60) lies copied in `h->old`; < 0 when refused. */
static __always_inline __s64 syn_cookie(struct synack_scratch *h, void *data, void *end,
					struct pkt *p, __u32 th_len)
{
	struct tcphdr *th = (struct tcphdr *)h->old;
	void *l3 = data + (p->l3 & 0x1f);

	th_len &= 0x3c;
	if (th_len < sizeof(*th))
		return -1;
	if (!p->v6) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end)
			return -1;
		return bpf_tcp_raw_gen_syncookie_ipv4(ip, th, th_len);
	} else {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		return bpf_tcp_raw_gen_syncookie_ipv6(ip6, th, th_len);
	}
}

/* Whether the kernel made the cookie the ACK at `data` acknowledges. */
static __always_inline int cookie_acked(void *data, void *end, struct pkt *p)
{
	struct tcphdr *th = data + (p->l4 & 0x3ff);

	if ((void *)(th + 1) > end)
		return 0;
	if (!p->v6) {
		struct iphdr *ip = data + (p->l3 & 0x1f);

		if ((void *)(ip + 1) > end)
			return 0;
		return bpf_tcp_raw_check_syncookie_ipv4(ip, th) == 0;
	} else {
		struct ipv6hdr *ip6 = data + (p->l3 & 0x1f);

		if ((void *)(ip6 + 1) > end)
			return 0;
		return bpf_tcp_raw_check_syncookie_ipv6(ip6, th) == 0;
	}
}

/* The TCP number a handed-over connection's segment has shifted (`d->seq_shift`): its field,
 * with the old and new values in `old`/`new` (network order); NULL when nothing moves (not
 * such a connection, or a client segment without ACK) or the header is short (`*bad` set). */
static __always_inline __be32 *seq_field(void *data, void *end, struct pkt *p,
					 const struct decision *d, __be32 *old, __be32 *new, int *bad)
{
	struct tcphdr *th;
	__be32 *field;

	if (d->seq_shift == SHIFT_NONE || p->proto != IPPROTO_TCP)
		return NULL;
	th = data + (p->l4 & 0x3ff);
	if ((void *)(th + 1) > end) {
		*bad = 1;
		return NULL;
	}
	if (d->seq_shift == SHIFT_ACK_BACK) {
		if (!th->ack)
			return NULL;
		field = &th->ack_seq;
		*old = *field;
		*new = bpf_htonl(bpf_ntohl(*old) - d->seq_delta);
	} else {
		field = &th->seq;
		*old = *field;
		*new = bpf_htonl(bpf_ntohl(*old) + d->seq_delta);
	}
	return field;
}

/* Swaps the IP addresses and sets a fresh TTL (its checksum updated) or hop limit, in place. */
static __always_inline int swap_ip(void *data, void *end, struct pkt *p)
{
	if (!p->v6) {
		struct iphdr *ip = data + (p->l3 & 0x1f);
		__u16 old;
		__be32 a;

		if ((void *)(ip + 1) > end)
			return -1;
		a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		old = *(__u16 *)&ip->ttl;
		ip->ttl = 64;
		ip->check = csum_replace16(ip->check, old, *(__u16 *)&ip->ttl);
	} else {
		struct ipv6hdr *ip6 = data + (p->l3 & 0x1f);
		struct in6_addr a;

		if ((void *)(ip6 + 1) > end)
			return -1;
		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		ip6->hop_limit = 64;
	}
	return 0;
}

#endif
