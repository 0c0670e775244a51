/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Tunnelling (`-i`): the outer header (IPv4/IPv6, then UDP + GUE, GRE or nothing for IPIP)
 * for one inner packet, byte for byte as rvs-engine's tunnel::outer_header builds it. No
 * packet is changed here; the hooks put the header in front of the packet (lb_tc.h,
 * lb_xdp.h) or punt what this cannot build exactly.
 *
 * Checksums are summed over 16-bit words as they lie in memory (network order); a
 * ones'-complement sum does not depend on the byte order it is taken in, so constants are
 * added with bpf_htons() and results are stored as they come out. */
#ifndef RVS_LB_TUNNEL_H
#define RVS_LB_TUNNEL_H

/* Room for the largest outer header the program builds: IPv6 (40) + UDP (8) + GUE (4). */
#define TUN_HDR_MAX 64
#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41
#define IPPROTO_GRE_ 47
#define GRE_F_CSUM_ 0x8000
#define IP_DF_ 0x4000
/* What the hooks' tunnel carry-outs return instead of a verdict: punt the frame to rvsd, over
 * the path MTU (RVS_PUNT_TOO_BIG) or for another reason (RVS_PUNT_TUNNEL). */
#define TUN_TOO_BIG -2
#define TUN_TO_RVSD -1
/* The GUE source port range (rvs-engine: the default ip_local_port_range). */
#define GUE_SPORT_MIN 32768
#define GUE_SPORT_SPAN (60999 - 32768)

/* What the outer header copies from the inner packet, and what its checksums need. */
struct tun_inner {
	__u32 len;     /* the inner packet's IP length (link padding excluded) */
	__u32 hsum;    /* ones'-complement sum of the inner IP header */
	__u32 l4sum;   /* sum of the transport segment once its own checksum is complete */
	__u16 l4_hlen; /* TCP/UDP header length (GSO's largest segment) */
	__u8 v6;
	__u8 dsfield;  /* IPv4 TOS / IPv6 traffic class */
	__u8 ttl;
	__u8 df;
	__u8 l4_known; /* l4sum holds: not an IPv4 UDP datagram without a checksum */
	__u8 pad;
};

/* An outer header being built. */
struct tun_hdr {
	__u8 b[TUN_HDR_MAX];
	__u32 len;
};

/* A tunnelled packet's working space, one per CPU (the hooks' stack is full). */
struct tun_scratch {
	struct bpf_fib_lookup fib;
	struct tun_hdr h;
	struct tun_inner in;
	struct rvs_addr src;
};

PERCPU_SCRATCH(tun_scratch, struct tun_scratch)

/* The outer source address toward each tunnel real server (by dest slot), as rvsd's engine
 * picks it (the route's preferred source, else the egress interface's address on the next
 * hop's subnet); all zero: the kernel's choice (BPF_FIB_LOOKUP_SRC). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct rvs_addr);
} tun_src SEC(".maps");

/* The outer IPv4 identification: one counter per CPU, as rvs-engine keeps one per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tun_ident SEC(".maps");

/* The next outer IPv4 identification (the first is 1, as the engine's). */
static __always_inline __u16 tun_next_ident(void)
{
	__u32 zero = 0;
	__u32 *id = bpf_map_lookup_elem(&tun_ident, &zero);

	if (!id)
		return 0;
	*id += 1;
	return (__u16)*id;
}

/* Adds `words` 16-bit words at `p` to `sum` (no folding: up to 20 words cannot overflow). */
static __always_inline __u32 sum16(__u32 sum, const void *p, int words)
{
	const __u16 *w = p;
	int i;

#pragma unroll
	for (i = 0; i < words; i++)
		sum += w[i];
	return sum;
}

/* Folds a ones'-complement sum to 16 bits (end-around carry). */
static __always_inline __u16 fold16(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Whether an address is IPv4 (IPv4-mapped in the maps). */
static __always_inline int addr_is_v4(const struct rvs_addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == bpf_htonl(0xffff);
}

/* The sum of an address as a pseudo-header carries it (4 or 16 bytes). */
static __always_inline __u32 addr_sum(const struct rvs_addr *a, int v6)
{
	return v6 ? sum16(0, a->w, 8) : sum16(0, &a->w[3], 2);
}

/* Reads what the outer header needs of the inner packet at `data + p->l3` (the parser has
 * checked its fixed headers; IPv4 has no options here). The transport segment's sum is taken
 * from its pseudo-header: once its checksum is complete (or completed later, a partial one),
 * the segment sums to the complement of the pseudo-header sum, so the bytes are not read.
 * -1 when the lengths do not add up. */
static __always_inline int tun_read_inner(void *data, void *end, struct pkt *p,
					  struct tun_inner *in)
{
	__u32 l3 = p->l3 & 0x1f, pseudo, l4len;
	void *l4;

	if (!p->v6) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > end)
			return -1;
		in->len = bpf_ntohs(ip->tot_len);
		in->dsfield = ip->tos;
		in->df = !!(ip->frag_off & bpf_htons(IP_DF_));
		in->hsum = sum16(0, ip, 10);
		if (in->len < sizeof(*ip))
			return -1;
		l4len = in->len - sizeof(*ip);
		l4 = ip + 1;
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		in->len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		in->dsfield = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		in->df = 0;
		in->hsum = sum16(0, ip6, 20);
		l4len = in->len - sizeof(*ip6);
		l4 = ip6 + 1;
	}
	in->v6 = p->v6;
	in->ttl = p->ttl;
	if (p->len < p->l3 + in->len)
		return -1;
	in->l4_known = 1;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > end)
			return -1;
		in->l4_hlen = tcp->doff * 4;
	} else {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > end)
			return -1;
		in->l4_hlen = sizeof(*udp);
		if (!p->v6 && udp->check == 0)
			in->l4_known = 0;
	}
	pseudo = addr_sum(&p->key.src, p->v6) + addr_sum(&p->key.dst, p->v6) +
		 bpf_htons(p->proto) + bpf_htons(l4len & 0xffff) + bpf_htons(l4len >> 16);
	in->l4sum = (__u16)~fold16(pseudo);
	return 0;
}

/* Bytes the encapsulation adds (rvs-engine's tunnel::overhead, never with the remote checksum
 * option, which the program does not emit). */
static __always_inline __u32 tun_overhead(const struct decision *d, int outer_v6)
{
	__u32 ip = outer_v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);

	if (d->tun_kind == RVS_TUN_GUE)
		return ip + sizeof(struct udphdr) + 4;
	if (d->tun_kind == RVS_TUN_GRE)
		return ip + (d->tun_csum == RVS_TUN_CSUM ? 8 : 4);
	return ip;
}

/* FNV-1a over `n` bytes, continuing from `h`. */
static __always_inline __u32 fnv1a(__u32 h, const __u8 *b, int n)
{
	int i;

#pragma unroll
	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x01000193;
	return h;
}

/* The GUE source port of a flow, as the engine picks it: FNV-1a over the inner addresses and
 * ports, scaled into the ephemeral port range. */
static __always_inline __be16 gue_sport(const struct pkt *p)
{
	__u32 h = 0x811c9dc5;

	if (p->v6) {
		h = fnv1a(h, (const __u8 *)p->key.src.w, 16);
		h = fnv1a(h, (const __u8 *)p->key.dst.w, 16);
	} else {
		h = fnv1a(h, (const __u8 *)&p->key.src.w[3], 4);
		h = fnv1a(h, (const __u8 *)&p->key.dst.w[3], 4);
	}
	h = fnv1a(h, (const __u8 *)&p->key.sport, 2);
	h = fnv1a(h, (const __u8 *)&p->key.dport, 2);
	return bpf_htons((__u16)(((__u64)h * GUE_SPORT_SPAN) >> 32) + GUE_SPORT_MIN);
}

/* The outer DS field: the inner one, with CE turned into ECT(0) (INET_ECN_encapsulate). */
static __always_inline __u8 ecn_encapsulate(__u8 ds)
{
	return (ds & 3) == 3 ? (ds & ~3) | 2 : ds;
}

/* Writes the part after the outer IP header (UDP + GUE, or GRE) at `at`, for an outer packet
 * of `total` bytes with an IP header of `ip_len`, and returns the outer IP protocol. `pseudo`
 * is the outer pseudo-header's address sum (for the UDP checksum). Checksums are summed from
 * the values written, not read back (fewer registers spilled to the stack). */
static __always_inline __u8 tun_build_l4(__u8 *at, const struct decision *d, const struct pkt *p,
					 const struct tun_inner *in, __u32 total, __u32 ip_len,
					 __u32 pseudo)
{
	__u8 inner_proto = in->v6 ? IPPROTO_IPV6_ : IPPROTO_IPIP_;

	if (d->tun_kind == RVS_TUN_GUE) {
		struct udphdr *udp = (void *)at;
		__be16 udp_len = bpf_htons(total - ip_len);
		__be16 sport = gue_sport(p);
		__u16 check;

		udp->source = sport;
		udp->dest = d->tun_port;
		udp->len = udp_len;
		udp->check = 0;
		/* GUE version 0, no options, the inner protocol, no flags. */
		at[8] = 0;
		at[9] = inner_proto;
		at[10] = 0;
		at[11] = 0;
		if (d->tun_csum != RVS_TUN_NOCSUM) {
			/* Pseudo-header, UDP header (length twice), GUE's protocol word, the inner
			 * packet. */
			check = ~fold16(pseudo + bpf_htons(IPPROTO_UDP) + udp_len + sport + d->tun_port +
					udp_len + bpf_htons(inner_proto) + in->hsum + in->l4sum);
			udp->check = check ? check : 0xffff;
		}
		return IPPROTO_UDP;
	}
	if (d->tun_kind == RVS_TUN_GRE) {
		__be16 *gre = (void *)at;
		__be16 flags = d->tun_csum == RVS_TUN_CSUM ? bpf_htons(GRE_F_CSUM_) : 0;
		__be16 type = bpf_htons(in->v6 ? ETH_P_IPV6 : ETH_P_IP);

		gre[0] = flags;
		gre[1] = type;
		if (d->tun_csum == RVS_TUN_CSUM) {
			gre[2] = ~fold16(flags + type + in->hsum + in->l4sum);
			gre[3] = 0;
		}
		return IPPROTO_GRE_;
	}
	return inner_proto;
}

/* Builds the outer header for the inner packet `in` (of `p`) from `src` to the real server
 * `d->addr` (both of the outer family). -1 when the packet would be longer than IP allows. */
static __always_inline int tun_build(struct tun_hdr *h, const struct decision *d,
				     const struct pkt *p, const struct tun_inner *in,
				     const struct rvs_addr *src, int outer_v6)
{
	__u32 hlen = tun_overhead(d, outer_v6);
	__u32 total = hlen + in->len;
	__u32 pseudo = addr_sum(src, outer_v6) + addr_sum(&d->addr, outer_v6);
	__u16 ident = tun_next_ident();
	__u8 proto;

	h->len = hlen;
	if (!outer_v6) {
		struct iphdr *ip = (void *)h->b;
		__be16 word0, id, frag, word4;

		if (total > 0xffff)
			return -1;
		proto = tun_build_l4(h->b + sizeof(*ip), d, p, in, total, sizeof(*ip), pseudo);
		/* Version 4, 5 words, the DS field; ip_select_ident: a DF packet gets id 0. */
		word0 = bpf_htons(0x4500 | ecn_encapsulate(in->dsfield));
		id = in->df ? 0 : bpf_htons(ident);
		frag = in->df ? bpf_htons(IP_DF_) : 0;
		word4 = bpf_htons(((__u16)in->ttl << 8) | proto);
		*(__be16 *)&h->b[0] = word0;
		ip->tot_len = bpf_htons(total);
		ip->id = id;
		ip->frag_off = frag;
		*(__be16 *)&h->b[8] = word4;
		ip->saddr = src->w[3];
		ip->daddr = d->addr.w[3];
		ip->check = ~fold16(word0 + bpf_htons(total) + id + frag + word4 + pseudo);
	} else {
		struct ipv6hdr *ip6 = (void *)h->b;
		__u8 tc = ecn_encapsulate(in->dsfield);

		if (total - sizeof(*ip6) > 0xffff)
			return -1;
		proto = tun_build_l4(h->b + sizeof(*ip6), d, p, in, total, sizeof(*ip6), pseudo);
		ip6->version = 6;
		ip6->priority = tc >> 4;
		ip6->flow_lbl[0] = (tc & 0x0f) << 4;
		ip6->flow_lbl[1] = 0;
		ip6->flow_lbl[2] = 0;
		ip6->payload_len = bpf_htons(total - sizeof(*ip6));
		ip6->nexthdr = proto;
		ip6->hop_limit = in->ttl;
		__builtin_memcpy(&ip6->saddr, src->w, 16);
		__builtin_memcpy(&ip6->daddr, d->addr.w, 16);
	}
	return 0;
}

/* The FIB lookup toward the real server in the outer family, checking `tot_len` (the largest
 * outer packet) against the route's MTU. Returns the lookup's result code; `src` gets the outer
 * source: rvsd's (`tun_src`), else the one the kernel would use. */
static __always_inline long tun_route(void *ctx, struct bpf_fib_lookup *fib,
				      const struct decision *d, __u32 ifindex, __u32 tot_len,
				      int outer_v6, struct rvs_addr *src)
{
	struct rvs_addr *published;
	long rc;

	fib->ifindex = ifindex;
	fib->tot_len = tot_len;
	if (!outer_v6) {
		fib->family = AF_INET_;
		fib->ipv4_dst = d->addr.w[3];
	} else {
		fib->family = AF_INET6_;
		__builtin_memcpy(fib->ipv6_dst, d->addr.w, 16);
	}
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), BPF_FIB_LOOKUP_SRC);
	if (!outer_v6)
		map_v4(src, fib->ipv4_src);
	else
		__builtin_memcpy(src->w, fib->ipv6_src, 16);
	published = bpf_map_lookup_elem(&tun_src, &d->dest);
	if (published && (published->w[0] | published->w[1] | published->w[2] | published->w[3]))
		*src = *published;
	return rc;
}

#endif
