/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Incremental checksum updates (RFC 1624) for rewrites by direct packet access, at XDP and
 * for the IP header at tc, and the header offsets the parser can produce. */
#ifndef RVS_LB_CSUM_H
#define RVS_LB_CSUM_H

/* Folds a 32-bit ones'-complement sum to 16 bits. */
static __always_inline __u16 csum_fold32(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

/* RFC 1624 eqn. 3 for one 16-bit word as stored: HC' = ~(~HC + ~m + m'). */
static __always_inline __u16 csum_replace16(__u16 check, __u16 from, __u16 to)
{
	__u32 c = (__u16)~check;

	c += (__u16)~from;
	c += to;
	return ~csum_fold32(c);
}

/* The same for a 4-byte field as stored. */
static __always_inline __u16 csum_replace32(__u16 check, __u32 from, __u32 to)
{
	check = csum_replace16(check, (__u16)from, (__u16)to);
	return csum_replace16(check, (__u16)(from >> 16), (__u16)(to >> 16));
}

/* Sets the IPv4 header's destination (`dst`) or source address to `to`, its checksum kept
 * right; returns the address it had. */
static __always_inline __be32 ip4_set_addr(struct iphdr *ip, int dst, __be32 to)
{
	__be32 *field = dst ? &ip->daddr : &ip->saddr;
	__be32 old = *field;

	*field = to;
	ip->check = csum_replace32(ip->check, old, to);
	return old;
}

/* Sets the IPv6 header's destination (`dst`) or source address to `to`; returns the L4
 * checksum `l4sum` updated for the change (IPv6 has no header checksum). */
static __always_inline __u16 ip6_set_addr(struct ipv6hdr *ip6, int dst, const struct rvs_addr *to,
					  __u16 l4sum)
{
	__u32 *field = dst ? (__u32 *)&ip6->daddr : (__u32 *)&ip6->saddr;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		l4sum = csum_replace32(l4sum, field[i], to->w[i]);
		field[i] = to->w[i];
	}
	return l4sum;
}

/* Header offsets the parser can produce: L3 after Ethernet and at most one VLAN tag, L4 after
 * a fixed IPv4 or IPv6 header. Bounding them keeps the verifier's pointer ranges small. */
#define MAX_L3_OFF 18
#define MAX_L4_OFF (MAX_L3_OFF + 40)

/* The L4 checksum field, or NULL for an IPv4 UDP datagram without one (or a short packet). */
static __always_inline __u16 *l4_csum_field(void *data, void *end, struct pkt *p)
{
	__u32 off = p->l4;

	if (off > MAX_L4_OFF)
		return NULL;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + off;

		if ((void *)(tcp + 1) > end)
			return NULL;
		return &tcp->check;
	} else {
		struct udphdr *udp = data + off;

		if ((void *)(udp + 1) > end)
			return NULL;
		if (!p->v6 && udp->check == 0)
			return NULL;
		return &udp->check;
	}
}

#endif
