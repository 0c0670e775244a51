/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The path-MTU check of a packet the program forwards itself (NAT, FULLNAT, DR), made before
 * the packet is rewritten: a packet longer than its path's MTU that may not be fragmented
 * (IPv4 with DF, IPv6) goes to rvsd as it came, which answers the sender with ICMP
 * "fragmentation needed" / "packet too big" quoting it. After the rewrite the kernel would
 * quote the translated packet, which the sender cannot match. IPv4 without DF is left to the
 * forward path (the kernel fragments it). */
#ifndef RVS_LB_MTU_H
#define RVS_LB_MTU_H

#define IP_DF_BIT 0x4000

/* Fills a FIB lookup's family, addresses, ingress interface and protocol for a packet of `p`'s
 * family from `src` to `dst`. */
static __always_inline void fib_route(struct bpf_fib_lookup *fib, const struct pkt *p, __u32 ifindex,
				      const struct rvs_addr *src, const struct rvs_addr *dst)
{
	fib->ifindex = ifindex;
	fib->l4_protocol = p->proto;
	if (!p->v6) {
		fib->family = AF_INET_;
		fib->ipv4_src = src->w[3];
		fib->ipv4_dst = dst->w[3];
	} else {
		fib->family = AF_INET6_;
		__builtin_memcpy(fib->ipv6_src, src->w, 16);
		__builtin_memcpy(fib->ipv6_dst, dst->w, 16);
	}
}

/* The egress MTU when the packet (L3 length `len`, `gso`: a GSO frame the kernel checks by
 * segment) does not fit the path from `src` to `dst` and may not be fragmented; 0 when it
 * fits, may be fragmented, or the route is not known here. A next hop the connection cached
 * answers without a lookup for packets up to its MTU. */
static __always_inline __u32 path_too_big(void *ctx, void *data, void *end, struct pkt *p,
					  __u32 ifindex, __u32 len, int gso,
					  const struct rvs_addr *src, const struct rvs_addr *dst,
					  const struct decision *d)
{
	struct bpf_fib_lookup fib = {};
	const struct rvs_hop *hop = d->hop;
	long rc;

	/* What every path carries: IPv6's minimum MTU, IPv4's 576 (every host takes it; links
	 * below it are left to the kernel's own check). */
	if (gso || len <= (p->v6 ? 1280 : 576))
		return 0;
	if (hop && d->fib_gen && hop->gen == d->fib_gen && len <= hop->mtu)
		return 0;
	if (!p->v6) {
		struct iphdr *ip = data + (p->l3 & 0x1f);

		if ((void *)(ip + 1) > end)
			return 0;
		if (!(ip->frag_off & bpf_htons(IP_DF_BIT)))
			return 0;
	}
	fib_route(&fib, p, ifindex, src, dst);
	fib.tot_len = len;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return 0;
	return fib.mtu_result ? fib.mtu_result : (p->v6 ? 1280 : 576);
}

#endif
