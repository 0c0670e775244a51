/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Carrying out a decision at tc: rewrites through the skb helpers (which keep partial
 * checksums and GSO frames right), FIB lookup and redirect, punting. */
#ifndef RVS_LB_TC_H
#define RVS_LB_TC_H

/* Copies the frame to rvsd and drops it here (`dest`: the real server to tunnel to, for
 * RVS_PUNT_TOO_BIG and RVS_PUNT_TUNNEL). */
static __always_inline int punt_frame(struct __sk_buff *skb, __u32 reason, __u32 dest)
{
	__u32 slot = bpf_get_smp_processor_id() % PUNT_SCRATCH_CPUS;
	struct punt_buf *buf = bpf_map_lookup_elem(&punt_scratch, &slot);
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
	buf->hdr.gso_size = skb->gso_size;
	buf->hdr.dest = dest;
	if (bpf_skb_load_bytes(skb, 0, buf->data, len) < 0)
		return TC_ACT_SHOT;
	bpf_ringbuf_output(&punt, buf, sizeof(buf->hdr) + len, 0);
	return TC_ACT_SHOT;
}

/* The L4 checksum's offset, or 0 for an IPv4 UDP datagram without one (or a short packet). */
static __always_inline __u32 l4_csum_off(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	__u16 *field = l4_csum_field(data, (void *)(long)skb->data_end, p);

	return field ? (__u32)((void *)field - data) : 0;
}

/* Rewrites the destination (to the real server: `dst` true) or the source (back to the
 * virtual service) address and port. The IP header is written directly (its checksum is
 * always complete); the L4 checksum goes through the kernel's helpers, which know the skb's
 * checksum state (a partial checksum of a locally sent or GSO packet covers the pseudo-header
 * only, so a port change leaves it as it is). Two helper calls in all. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, struct pkt *p, int dst,
				       const struct rvs_addr *addr, __be16 port)
{
	__u32 csum = l4_csum_off(skb, p);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 l3 = p->l3, l4 = p->l4;
	__be16 *ports, *pp, old_port;
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__s64 diff = 0;

	if (l3 > MAX_L3_OFF || l4 > MAX_L4_OFF)
		return -1;
	ports = data + l4;
	if ((void *)(ports + 2) > end)
		return -1;
	pp = dst ? &ports[1] : &ports[0];
	old_port = *pp;
	*pp = port;
	if (!p->v6) {
		struct iphdr *ip = data + l3;
		__be32 old;

		if ((void *)(ip + 1) > end)
			return -1;
		old = ip4_set_addr(ip, dst, addr->w[3]);
		if (csum && old != addr->w[3] &&
		    bpf_l4_csum_replace(skb, csum, old, addr->w[3], BPF_F_PSEUDO_HDR | 4 | mangled) < 0)
			return -1;
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		/* The change as a ones'-complement difference: the words replaced in a zero sum. */
		diff = (__u16)~ip6_set_addr(ip6, dst, addr, 0xffff);
		if (csum && diff && bpf_l4_csum_replace(skb, csum, 0, diff, BPF_F_PSEUDO_HDR) < 0)
			return -1;
	}
	if (csum && old_port != port &&
	    bpf_l4_csum_replace(skb, csum, old_port, port, 2 | mangled) < 0)
		return -1;
	return 0;
}

/* Shifts a handed-over SYN-proxied connection's segment (lb_synproxy.h); the checksum goes
 * through the kernel's helper, which leaves a partial one as it is (it does not cover the
 * numbers). */
static __always_inline int tc_shift_seq(struct __sk_buff *skb, struct pkt *p,
					const struct decision *d)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__be32 old = 0, new = 0, *field;
	int bad = 0;

	field = seq_field(data, end, p, d, &old, &new, &bad);
	if (!field)
		return bad ? -1 : 0;
	*field = new;
	/* TCP's checksum field, in the header seq_field checked. */
	if (bpf_l4_csum_replace(skb, (p->l4 & 0x3ff) + 16, old, new, 4) < 0)
		return -1;
	return 0;
}

/* Takes one from the TTL (IPv4, checksum updated) or hop limit (IPv6) in place. */
static __always_inline int tc_dec_ttl(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 l3 = p->l3;

	if (l3 > MAX_L3_OFF)
		return -1;
	if (!p->v6) {
		struct iphdr *ip = data + l3;
		__u16 *word, old;

		if ((void *)(ip + 1) > end)
			return -1;
		word = (__u16 *)&ip->ttl;
		old = *word;
		ip->ttl--;
		ip->check = csum_replace16(ip->check, old, *word);
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		ip6->hop_limit--;
	}
	return 0;
}

/* Sends the packet on toward `dst` (the next hop): the frame redirected with the FIB's MAC
 * addresses when it has a route and a neighbour, through the kernel's neighbour resolution
 * when it has only the route (bpf_redirect_neigh), else handed to the kernel. NAT decrements the TTL/hop limit; direct routing (`keep_ttl`) sends the
 * packet exactly as it came, as IPVS's DR does. */
static __always_inline int forward(struct __sk_buff *skb, struct pkt *p, const struct rvs_addr *src,
				   const struct rvs_addr *dst, int keep_ttl, struct decision *d)
{
	struct bpf_fib_lookup fib = {};
	struct rvs_hop *hop = d->hop;
	__u32 ifindex;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	void *data, *end;
	struct ethhdr *eth;
	long rc;

	if (hop && d->fib_gen && hop->gen == d->fib_gen &&
	    (skb->gso_size || skb->len - p->l3 <= hop->mtu)) {
		/* The connection's next hop, still valid: no lookup. */
		ifindex = hop->ifindex;
		__builtin_memcpy(dmac, hop->dmac, ETH_ALEN);
		__builtin_memcpy(smac, hop->smac, ETH_ALEN);
		rc = BPF_FIB_LKUP_RET_SUCCESS;
		goto rewrite_ttl;
	}
	/* tot_len left 0: the kernel then checks the skb itself against the egress MTU, GSO
	 * frames by their segments (a length given here would refuse every GSO frame). */
	fib_route(&fib, p, skb->ingress_ifindex, src, dst);
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		count(RVS_STAT_FIB_PASS);
		return TC_ACT_OK;
	}
	ifindex = fib.ifindex;
	__builtin_memcpy(dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(smac, fib.smac, ETH_ALEN);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS && hop && d->fib_gen) {
		hop->ifindex = fib.ifindex;
		hop->mtu = fib.mtu_result;
		__builtin_memcpy(hop->dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(hop->smac, fib.smac, ETH_ALEN);
		hop->gen = d->fib_gen;
	}
rewrite_ttl:
	if (!keep_ttl && tc_dec_ttl(skb, p) < 0)
		return TC_ACT_SHOT;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* The route is known, the next hop's MAC is not yet: the kernel resolves it and
		 * sends the packet then (it would not route a DR packet, addressed to the VIP). */
		struct bpf_redir_neigh nh = {};

		if (!p->v6) {
			nh.nh_family = AF_INET_;
			nh.ipv4_nh = fib.ipv4_dst;
		} else {
			nh.nh_family = AF_INET6_;
			__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
		}
		count(RVS_STAT_FIB_PASS);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_SHOT;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	count(RVS_STAT_FORWARDED);
	return bpf_redirect(ifindex, 0);
}

/* Sends the frame out of `ifindex` to the next hop: with the FIB's MAC addresses, or through
 * the kernel's neighbour resolution when it had none yet (`rc` BPF_FIB_LKUP_RET_NO_NEIGH). */
static __always_inline int tc_send(struct __sk_buff *skb, struct bpf_fib_lookup *fib, long rc,
				   int v6)
{
	void *data, *end;
	struct ethhdr *eth;

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = {};

		if (!v6) {
			nh.nh_family = AF_INET_;
			nh.ipv4_nh = fib->ipv4_dst;
		} else {
			nh.nh_family = AF_INET6_;
			__builtin_memcpy(nh.ipv6_nh, fib->ipv6_dst, 16);
		}
		count(RVS_STAT_FIB_PASS);
		return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
	}
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_SHOT;
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	eth->h_proto = bpf_htons(v6 ? ETH_P_IPV6 : ETH_P_IP);
	count(RVS_STAT_FORWARDED);
	return bpf_redirect(fib->ifindex, 0);
}

/* Tunnels the packet to the real server (ACT_TUN) as the engine does: outer header built by
 * lb_tunnel.h, room made with bpf_skb_adjust_room and its ENCAP flags so that the kernel
 * segments a GSO frame into tunnelled packets (inner segments as large as they came, as the
 * engine cuts them). Left to rvsd (TUN_TOO_BIG, TUN_TO_RVSD: the caller punts the frame with
 * the server's slot): a packet over the path MTU (rvsd answers with ICMP),
 * remote checksum offload (it depends on the skb's checksum state, which tc cannot see), a
 * GSO frame with an outer checksum (the kernel's segmentation would not fill it in), and
 * anything else not built exactly here. */
static __noinline int tc_tunnel(struct __sk_buff *skb, struct pkt *p, struct decision *d)
{
	struct tun_scratch *t = tun_scratch_get();
	int outer_v6 = !addr_is_v4(&d->addr);
	__u32 gso = skb->gso_size, biggest, hlen;
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;
	long rc;

	if (!t)
		return TC_ACT_SHOT;
	if (p->l3 != ETH_HLEN || d->tun_csum == RVS_TUN_REMCSUM)
		return TUN_TO_RVSD;
	if (gso && d->tun_kind != RVS_TUN_IPIP && d->tun_csum != RVS_TUN_NOCSUM)
		return TUN_TO_RVSD;
	if (tun_read_inner((void *)(long)skb->data, (void *)(long)skb->data_end, p, &t->in) < 0)
		return TUN_TO_RVSD;
	if (d->tun_kind != RVS_TUN_IPIP && d->tun_csum != RVS_TUN_NOCSUM && !t->in.l4_known)
		return TUN_TO_RVSD;
	biggest = t->in.len;
	if (gso) {
		/* The largest segment: the headers and one gso_size of payload. */
		__u32 hdrs = (t->in.v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) + t->in.l4_hlen;

		if (t->in.len > hdrs + gso)
			biggest = hdrs + gso;
	}
	rc = tun_route(skb, &t->fib, d, skb->ingress_ifindex, biggest + tun_overhead(d, outer_v6),
		       outer_v6, &t->src);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* The engine's ICMP error takes an identification of the counter too. */
		tun_next_ident();
		return TUN_TOO_BIG;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TUN_TO_RVSD;
	if (tun_build(&t->h, d, p, &t->in, &t->src, outer_v6) < 0)
		return TUN_TO_RVSD;
	/* Link padding after the inner packet is not sent on (the engine sends the IP length). */
	if (skb->len > ETH_HLEN + t->in.len && bpf_skb_change_tail(skb, ETH_HLEN + t->in.len, 0) < 0)
		return TC_ACT_SHOT;
	flags |= outer_v6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
	if (d->tun_kind == RVS_TUN_GUE)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
	else if (d->tun_kind == RVS_TUN_GRE)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L4_GRE;
	hlen = t->h.len;
	if (hlen < sizeof(struct iphdr) || hlen > TUN_HDR_MAX)
		return TC_ACT_SHOT;
	/* Refused (e.g. a GSO type the kernel cannot tunnel): rvsd segments in software. */
	if (bpf_skb_adjust_room(skb, hlen, BPF_ADJ_ROOM_MAC, flags) < 0)
		return TUN_TO_RVSD;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, t->h.b, hlen, 0) < 0)
		return TC_ACT_SHOT;
	return tc_send(skb, &t->fib, rc, outer_v6);
}

/* Answers a SYN with the kernel's cookie (lb_synproxy.h). The way back to the client is
 * looked up first (a spoofed source without a route is dropped before any other work); then
 * the TCP header is rewritten through scratch copies (its checksum updated by the difference,
 * so a partial checksum stays one), addresses and TTL swapped in place, and the SYN-ACK sent
 * to the client as any packet of the director's. */
static __noinline int tc_synack(struct __sk_buff *skb, struct pkt *p)
{
	struct synack_scratch *h = synack_scratch_get();
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 th_len, l4 = p->l4;
	__s64 cookie, diff;
	long rc;

	if (!h || p->l3 > MAX_L3_OFF || l4 > MAX_L4_OFF)
		return TC_ACT_SHOT;
	/* The lookup writes results (MTU, metric) over inputs: start from zero each time. */
	__builtin_memset(&h->fib, 0, sizeof(h->fib));
	fib_route(&h->fib, p, skb->ingress_ifindex, &p->key.dst, &p->key.src);
	rc = bpf_fib_lookup(skb, &h->fib, sizeof(h->fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		count(RVS_STAT_SYNPROXY_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	th_len = syn_header_len(data, end, p);
	if (!th_len)
		return punt_frame(skb, RVS_PUNT_SERVICE, 0);
	/* Bounded for the verifier (syn_header_len checked 20 to 60). */
	th_len &= 0x3c;
	if (th_len < 20 || bpf_skb_load_bytes(skb, l4, h->old, th_len) < 0)
		return TC_ACT_SHOT;
	cookie = syn_cookie(h, data, end, p, th_len);
	if (cookie < 0)
		return punt_frame(skb, RVS_PUNT_SERVICE, 0);
	synack_header(h, th_len, (__u32)cookie, (__u16)(cookie >> 32));
	diff = bpf_csum_diff((__be32 *)h->old, th_len, (__be32 *)h->new, th_len, 0);
	if (diff < 0 || bpf_skb_store_bytes(skb, l4, h->new, th_len, 0) < 0 ||
	    bpf_l4_csum_replace(skb, l4 + 16, 0, diff, 0) < 0)
		return TC_ACT_SHOT;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if (swap_ip(data, end, p) < 0)
		return TC_ACT_SHOT;
	count(RVS_STAT_SYNPROXY_ANSWERED);
	return tc_send(skb, &h->fib, rc, p->v6);
}

/* An ACK without a connection to a SYN-proxied service: to rvsd, marked when its cookie is
 * the kernel's (rvsd opens the connection), as any segment of the service otherwise. */
static __always_inline int tc_cookie(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	int ok = cookie_acked(data, end, p);

	return punt_frame(skb, ok ? RVS_PUNT_SYNPROXY_ACK : RVS_PUNT_SERVICE, 0);
}

/* The egress MTU when the frame does not fit its path to `dst` and may not be fragmented (see
 * lb_mtu.h), else 0. */
static __always_inline __u32 tc_too_big(struct __sk_buff *skb, struct pkt *p, const struct rvs_addr *src,
					const struct rvs_addr *dst, const struct decision *d)
{
	return path_too_big(skb, (void *)(long)skb->data, (void *)(long)skb->data_end, p,
			    skb->ingress_ifindex, skb->len - p->l3, skb->gso_size != 0, src, dst, d);
}

/* Carries out `d` at tc. */
static __always_inline int tc_carry_out(struct __sk_buff *skb, struct pkt *p, struct decision *d)
{
	__u32 mtu;

	switch (d->action) {
	case ACT_DROP:
		count(d->why);
		return TC_ACT_SHOT;
	case ACT_PUNT:
		return punt_frame(skb, d->why, 0);
	case ACT_NAT_IN:
		if ((mtu = tc_too_big(skb, p, &p->key.src, &d->addr, d)))
			return punt_frame(skb, RVS_PUNT_FRAG_NEEDED, mtu);
		if (nat_rewrite(skb, p, 1, &d->addr, d->port) < 0 || tc_shift_seq(skb, p, d) < 0)
			return TC_ACT_SHOT;
		return forward(skb, p, &p->key.src, &d->addr, 0, d);
	case ACT_NAT_OUT:
		if ((mtu = tc_too_big(skb, p, &d->addr, &p->key.dst, d)))
			return punt_frame(skb, RVS_PUNT_FRAG_NEEDED, mtu);
		if (nat_rewrite(skb, p, 0, &d->addr, d->port) < 0 || tc_shift_seq(skb, p, d) < 0)
			return TC_ACT_SHOT;
		return forward(skb, p, &d->addr, &p->key.dst, 0, d);
	case ACT_FNAT_IN:
		if ((mtu = tc_too_big(skb, p, &d->addr2, &d->addr, d)))
			return punt_frame(skb, RVS_PUNT_FRAG_NEEDED, mtu);
		if (nat_rewrite(skb, p, 1, &d->addr, d->port) < 0 || nat_rewrite(skb, p, 0, &d->addr2, d->port2) < 0 ||
		    tc_shift_seq(skb, p, d) < 0)
			return TC_ACT_SHOT;
		return forward(skb, p, &d->addr2, &d->addr, 0, d);
	case ACT_FNAT_OUT:
		if ((mtu = tc_too_big(skb, p, &d->addr, &d->addr2, d)))
			return punt_frame(skb, RVS_PUNT_FRAG_NEEDED, mtu);
		if (nat_rewrite(skb, p, 0, &d->addr, d->port) < 0 || nat_rewrite(skb, p, 1, &d->addr2, d->port2) < 0 ||
		    tc_shift_seq(skb, p, d) < 0)
			return TC_ACT_SHOT;
		return forward(skb, p, &d->addr, &d->addr2, 0, d);
	case ACT_DR:
		if ((mtu = tc_too_big(skb, p, &p->key.src, &d->addr, d)))
			return punt_frame(skb, RVS_PUNT_FRAG_NEEDED, mtu);
		return forward(skb, p, &p->key.src, &d->addr, 1, d);
	case ACT_SYNACK:
		return tc_synack(skb, p);
	case ACT_COOKIE:
		return tc_cookie(skb, p);
	case ACT_TUN: {
		int rc = tc_tunnel(skb, p, d);

		if (rc == TUN_TO_RVSD || rc == TUN_TOO_BIG)
			return punt_frame(skb, rc == TUN_TOO_BIG ? RVS_PUNT_TOO_BIG : RVS_PUNT_TUNNEL, d->dest);
		return rc;
	}
	default:
		count(RVS_STAT_PASSED);
		return TC_ACT_OK;
	}
}

#endif
