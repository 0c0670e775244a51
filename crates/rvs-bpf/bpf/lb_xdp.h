/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Carrying out a decision at XDP: rewrites by direct packet access with incremental
 * checksums (RFC 1624), FIB lookup and redirect, punting. XDP frames carry complete
 * checksums (on veth: tx checksum offload off on the sending side). */
#ifndef RVS_LB_XDP_H
#define RVS_LB_XDP_H

/* Copies the frame to rvsd and drops it here (`dest` as punt_frame's). */
static __always_inline int xdp_punt(struct xdp_md *ctx, __u32 reason, __u32 dest)
{
	__u32 slot = bpf_get_smp_processor_id() % PUNT_SCRATCH_CPUS;
	struct punt_buf *buf = bpf_map_lookup_elem(&punt_scratch, &slot);
	__u32 len = bpf_xdp_get_buff_len(ctx);

	count(RVS_STAT_PUNT + (reason < RVS_PUNT_REASONS ? reason : RVS_PUNT_OTHER));
	if (!buf)
		return XDP_DROP;
	if (len > PUNT_MAX)
		len = PUNT_MAX;
	if (len < ETH_HLEN)
		return XDP_DROP;
	buf->hdr.ifindex = ctx->ingress_ifindex;
	buf->hdr.len = len;
	buf->hdr.wire = bpf_xdp_get_buff_len(ctx);
	buf->hdr.reason = reason;
	buf->hdr.gso_size = 0;
	buf->hdr.dest = dest;
	if (bpf_xdp_load_bytes(ctx, 0, buf->data, len) < 0)
		return XDP_DROP;
	bpf_ringbuf_output(&punt, buf, sizeof(buf->hdr) + len, 0);
	return XDP_DROP;
}

/* UDP writes a computed zero as all ones (zero means "no checksum"). */
static __always_inline void store_l4_csum(__u16 *field, __u16 value, __u8 proto)
{
	if (proto == IPPROTO_UDP && value == 0)
		value = 0xffff;
	*field = value;
}

/* Rewrites the destination (`dst`) or source address and port, checksums updated. */
static __always_inline int xdp_nat_rewrite(struct xdp_md *ctx, struct pkt *p, int dst,
					   const struct rvs_addr *addr, __be16 port)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 *l4 = l4_csum_field(data, end, p);
	__u16 l4sum = l4 ? *l4 : 0;
	__u32 l3 = p->l3, l4off = p->l4;
	__be16 *ports, *pp;

	if (l3 > MAX_L3_OFF || l4off > MAX_L4_OFF)
		return -1;
	ports = data + l4off;
	if ((void *)(ports + 2) > end)
		return -1;
	if (!p->v6) {
		struct iphdr *ip = data + l3;
		__be32 old;

		if ((void *)(ip + 1) > end)
			return -1;
		old = ip4_set_addr(ip, dst, addr->w[3]);
		l4sum = csum_replace32(l4sum, old, addr->w[3]);
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		l4sum = ip6_set_addr(ip6, dst, addr, l4sum);
	}
	pp = dst ? &ports[1] : &ports[0];
	if (*pp != port) {
		l4sum = csum_replace16(l4sum, *pp, port);
		*pp = port;
	}
	if (l4) {
		/* Bounds were checked when the field was found; look it up again for the verifier. */
		l4 = l4_csum_field(data, end, p);
		if (l4)
			store_l4_csum(l4, l4sum, p->proto);
	}
	return 0;
}

/* Shifts a handed-over SYN-proxied connection's segment (lb_synproxy.h), its checksum
 * updated. */
static __always_inline int xdp_shift_seq(struct xdp_md *ctx, struct pkt *p,
					 const struct decision *d)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__be32 old = 0, new = 0, *field;
	struct tcphdr *th;
	int bad = 0;

	field = seq_field(data, end, p, d, &old, &new, &bad);
	if (!field)
		return bad ? -1 : 0;
	*field = new;
	th = data + (p->l4 & 0x3ff);
	if ((void *)(th + 1) > end)
		return -1;
	th->check = csum_replace32(th->check, old, new);
	return 0;
}

/* XDP's forward (see lb_tc.h's): FIB lookup, TTL/hop limit, MACs, redirect; the kernel's
 * when the FIB has no neighbour yet. */
static __always_inline int xdp_forward(struct xdp_md *ctx, struct pkt *p, const struct rvs_addr *src,
				       const struct rvs_addr *dst, int keep_ttl, struct decision *d)
{
	struct bpf_fib_lookup fib = {};
	struct rvs_hop *hop = d->hop;
	__u32 ifindex, len = p->len - p->l3;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	void *data, *end;
	struct ethhdr *eth;

	if (hop && d->fib_gen && hop->gen == d->fib_gen && len <= hop->mtu) {
		/* The connection's next hop, still valid: no lookup. */
		ifindex = hop->ifindex;
		__builtin_memcpy(dmac, hop->dmac, ETH_ALEN);
		__builtin_memcpy(smac, hop->smac, ETH_ALEN);
	} else {
		fib_route(&fib, p, ctx->ingress_ifindex, src, dst);
		fib.tot_len = len;
		if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS) {
			count(RVS_STAT_FIB_PASS);
			return XDP_PASS;
		}
		ifindex = fib.ifindex;
		__builtin_memcpy(dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(smac, fib.smac, ETH_ALEN);
		if (hop && d->fib_gen) {
			/* XDP's lookup checked this packet's length: the cache serves packets up to
			 * the longest one checked. */
			if (hop->gen != d->fib_gen || len > hop->mtu)
				hop->mtu = len;
			hop->ifindex = fib.ifindex;
			__builtin_memcpy(hop->dmac, fib.dmac, ETH_ALEN);
			__builtin_memcpy(hop->smac, fib.smac, ETH_ALEN);
			hop->gen = d->fib_gen;
		}
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	if (!keep_ttl && p->l3 > MAX_L3_OFF)
		return XDP_DROP;
	if (!keep_ttl) {
		__u32 l3 = p->l3 & 0x1f;

		if (!p->v6) {
			struct iphdr *ip = data + l3;
			__u16 old, new;

			if ((void *)(ip + 1) > end)
				return XDP_DROP;
			old = *(__u16 *)&ip->ttl;
			ip->ttl--;
			new = *(__u16 *)&ip->ttl;
			ip->check = csum_replace16(ip->check, old, new);
		} else {
			struct ipv6hdr *ip6 = data + l3;

			if ((void *)(ip6 + 1) > end)
				return XDP_DROP;
			ip6->hop_limit--;
		}
	}
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	count(RVS_STAT_FORWARDED);
	return bpf_redirect(ifindex, 0);
}

/* Tunnels the packet to the real server (ACT_TUN) as the engine does: outer header built by
 * lb_tunnel.h, put in front with bpf_xdp_adjust_head. XDP frames carry complete checksums, so
 * remote checksum offload has nothing to offload and is a plain outer checksum, as the engine
 * sends it for a frame without a partial checksum. Left to rvsd (TUN_TOO_BIG, TUN_TO_RVSD: the
 * caller punts the frame with the server's slot): a packet over the path MTU (rvsd answers
 * with ICMP), a next hop without a neighbour yet, anything not built exactly. */
static __noinline int xdp_tunnel(struct xdp_md *ctx, struct pkt *p, struct decision *d)
{
	struct tun_scratch *t = tun_scratch_get();
	int outer_v6 = !addr_is_v4(&d->addr);
	void *data, *end;
	struct ethhdr *eth;
	__u32 hlen, len;
	long rc;

	if (!t)
		return XDP_DROP;
	if (p->l3 != ETH_HLEN)
		return TUN_TO_RVSD;
	if (tun_read_inner((void *)(long)ctx->data, (void *)(long)ctx->data_end, p, &t->in) < 0)
		return TUN_TO_RVSD;
	if (d->tun_kind != RVS_TUN_IPIP && d->tun_csum != RVS_TUN_NOCSUM && !t->in.l4_known)
		return TUN_TO_RVSD;
	rc = tun_route(ctx, &t->fib, d, ctx->ingress_ifindex, t->in.len + tun_overhead(d, outer_v6),
		       outer_v6, &t->src);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* The engine's ICMP error takes an identification of the counter too. */
		tun_next_ident();
		return TUN_TOO_BIG;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return TUN_TO_RVSD;
	if (tun_build(&t->h, d, p, &t->in, &t->src, outer_v6) < 0)
		return TUN_TO_RVSD;
	/* Link padding after the inner packet is not sent on. */
	len = bpf_xdp_get_buff_len(ctx);
	if (len > ETH_HLEN + t->in.len &&
	    bpf_xdp_adjust_tail(ctx, (int)(ETH_HLEN + t->in.len) - (int)len) < 0)
		return XDP_DROP;
	hlen = t->h.len;
	if (hlen < sizeof(struct iphdr) || hlen > TUN_HDR_MAX)
		return XDP_DROP;
	if (bpf_xdp_adjust_head(ctx, -(int)hlen) < 0)
		return XDP_DROP;
	if (bpf_xdp_store_bytes(ctx, ETH_HLEN, t->h.b, hlen) < 0)
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, t->fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, t->fib.smac, ETH_ALEN);
	eth->h_proto = bpf_htons(outer_v6 ? ETH_P_IPV6 : ETH_P_IP);
	count(RVS_STAT_FORWARDED);
	return bpf_redirect(t->fib.ifindex, 0);
}

/* The egress MTU when the frame does not fit its path to `dst` and may not be fragmented (see
 * lb_mtu.h), else 0. */
static __always_inline __u32 xdp_too_big(struct xdp_md *ctx, struct pkt *p, const struct rvs_addr *src,
					 const struct rvs_addr *dst, const struct decision *d)
{
	return path_too_big(ctx, (void *)(long)ctx->data, (void *)(long)ctx->data_end, p,
			    ctx->ingress_ifindex, p->len - p->l3, 0, src, dst, d);
}

/* Answers a SYN with the kernel's cookie at XDP, as tc_synack does at tc (lb_synproxy.h): the
 * way back to the client first (a spoofed source without a route is dropped), then the TCP
 * header rewritten through scratch copies with its checksum carried over the difference, the
 * addresses and TTL swapped, and the SYN-ACK redirected to the client. Without the client's
 * MAC address yet (XDP has no neighbour resolution), rvsd answers. */
static __noinline int xdp_synack(struct xdp_md *ctx, struct pkt *p)
{
	struct synack_scratch *h = synack_scratch_get();
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 th_len, l4 = p->l4;
	struct ethhdr *eth;
	__s64 cookie, sum;
	long rc;

	if (!h || p->l3 > MAX_L3_OFF || l4 > MAX_L4_OFF)
		return XDP_DROP;
	/* The lookup writes results (MTU, metric) over inputs: start from zero each time. */
	__builtin_memset(&h->fib, 0, sizeof(h->fib));
	fib_route(&h->fib, p, ctx->ingress_ifindex, &p->key.dst, &p->key.src);
	rc = bpf_fib_lookup(ctx, &h->fib, sizeof(h->fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return xdp_punt(ctx, RVS_PUNT_SERVICE, 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(RVS_STAT_SYNPROXY_NO_ROUTE);
		return XDP_DROP;
	}
	th_len = syn_header_len(data, end, p);
	if (!th_len)
		return xdp_punt(ctx, RVS_PUNT_SERVICE, 0);
	th_len &= 0x3c;
	if (th_len < 20 || bpf_xdp_load_bytes(ctx, l4, h->old, th_len) < 0)
		return XDP_DROP;
	cookie = syn_cookie(h, data, end, p, th_len);
	if (cookie < 0)
		return xdp_punt(ctx, RVS_PUNT_SERVICE, 0);
	synack_header(h, th_len, (__u32)cookie, (__u16)(cookie >> 32));
	/* Both copies hold the old checksum field: the difference of the rest, on top of it. */
	sum = bpf_csum_diff((__be32 *)h->old, th_len, (__be32 *)h->new, th_len,
			    (__u16)~*(__u16 *)&h->old[16]);
	if (sum < 0)
		return XDP_DROP;
	*(__u16 *)&h->new[16] = ~csum_fold32((__u32)sum);
	if (bpf_xdp_store_bytes(ctx, l4, h->new, th_len) < 0)
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (swap_ip(data, end, p) < 0)
		return XDP_DROP;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, h->fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, h->fib.smac, ETH_ALEN);
	count(RVS_STAT_SYNPROXY_ANSWERED);
	return bpf_redirect(h->fib.ifindex, 0);
}

/* An ACK without a connection to a SYN-proxied service: as tc_cookie. */
static __always_inline int xdp_cookie(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	int ok = cookie_acked(data, end, p);

	return xdp_punt(ctx, ok ? RVS_PUNT_SYNPROXY_ACK : RVS_PUNT_SERVICE, 0);
}

/* Carries out `d` at XDP. */
static __always_inline int xdp_carry_out(struct xdp_md *ctx, struct pkt *p, struct decision *d)
{
	__u32 mtu;

	switch (d->action) {
	case ACT_DROP:
		count(d->why);
		return XDP_DROP;
	case ACT_PUNT:
		return xdp_punt(ctx, d->why, 0);
	case ACT_NAT_IN:
		if ((mtu = xdp_too_big(ctx, p, &p->key.src, &d->addr, d)))
			return xdp_punt(ctx, RVS_PUNT_FRAG_NEEDED, mtu);
		if (xdp_nat_rewrite(ctx, p, 1, &d->addr, d->port) < 0 || xdp_shift_seq(ctx, p, d) < 0)
			return XDP_DROP;
		return xdp_forward(ctx, p, &p->key.src, &d->addr, 0, d);
	case ACT_NAT_OUT:
		if ((mtu = xdp_too_big(ctx, p, &d->addr, &p->key.dst, d)))
			return xdp_punt(ctx, RVS_PUNT_FRAG_NEEDED, mtu);
		if (xdp_nat_rewrite(ctx, p, 0, &d->addr, d->port) < 0 || xdp_shift_seq(ctx, p, d) < 0)
			return XDP_DROP;
		return xdp_forward(ctx, p, &d->addr, &p->key.dst, 0, d);
	case ACT_FNAT_IN:
		if ((mtu = xdp_too_big(ctx, p, &d->addr2, &d->addr, d)))
			return xdp_punt(ctx, RVS_PUNT_FRAG_NEEDED, mtu);
		if (xdp_nat_rewrite(ctx, p, 1, &d->addr, d->port) < 0 || xdp_nat_rewrite(ctx, p, 0, &d->addr2, d->port2) < 0 ||
		    xdp_shift_seq(ctx, p, d) < 0)
			return XDP_DROP;
		return xdp_forward(ctx, p, &d->addr2, &d->addr, 0, d);
	case ACT_FNAT_OUT:
		if ((mtu = xdp_too_big(ctx, p, &d->addr, &d->addr2, d)))
			return xdp_punt(ctx, RVS_PUNT_FRAG_NEEDED, mtu);
		if (xdp_nat_rewrite(ctx, p, 0, &d->addr, d->port) < 0 || xdp_nat_rewrite(ctx, p, 1, &d->addr2, d->port2) < 0 ||
		    xdp_shift_seq(ctx, p, d) < 0)
			return XDP_DROP;
		return xdp_forward(ctx, p, &d->addr, &d->addr2, 0, d);
	case ACT_DR:
		if ((mtu = xdp_too_big(ctx, p, &p->key.src, &d->addr, d)))
			return xdp_punt(ctx, RVS_PUNT_FRAG_NEEDED, mtu);
		return xdp_forward(ctx, p, &p->key.src, &d->addr, 1, d);
	case ACT_SYNACK:
		return xdp_synack(ctx, p);
	case ACT_COOKIE:
		return xdp_cookie(ctx, p);
	case ACT_TUN: {
		int rc = xdp_tunnel(ctx, p, d);

		if (rc == TUN_TO_RVSD || rc == TUN_TOO_BIG)
			return xdp_punt(ctx, rc == TUN_TOO_BIG ? RVS_PUNT_TOO_BIG : RVS_PUNT_TUNNEL, d->dest);
		return rc;
	}
	default:
		count(RVS_STAT_PASSED);
		return XDP_PASS;
	}
}

#endif
