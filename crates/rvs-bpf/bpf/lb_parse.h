/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Frame parsing, the same for tc and XDP (direct packet access). */
#ifndef RVS_LB_PARSE_H
#define RVS_LB_PARSE_H

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

/* The packet being handled (per CPU; see rvs_lb.c's fresh_pkt). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt);
} pkt_scratch SEC(".maps");

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

/* Parses Ethernet (one optional 802.1Q tag), IPv4 or IPv6 and the TCP/UDP ports of the frame
 * between `data` and `end` (`len` bytes long in all) into `p`, which the caller zeroed (a
 * second parse after a pull writes every field the first one could have). PARSE_OK: a TCP or UDP packet the
 * program works on; PARSE_PASS: not one it knows; PARSE_PUNT: one for rvsd if it is the
 * director's (*reason set); PARSE_DROP: malformed; PARSE_SHORT: the headers end past `end`
 * (at tc, the rest may be in the skb's fragments: pull and parse again; else PARSE_PASS). */
#define PARSE_OK 0
#define PARSE_PASS 1
#define PARSE_PUNT 2
#define PARSE_DROP 3
#define PARSE_SHORT 4

static __always_inline int parse(void *data, void *end, __u32 len, struct pkt *p, __u32 *reason)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 type;

	if ((void *)(eth + 1) > end)
		return PARSE_PASS;
	type = eth->h_proto;
	if (type == bpf_htons(ETH_P_8021Q_)) {
		__be16 *inner = data + off + 2;

		if ((void *)(inner + 1) > end)
			return PARSE_SHORT;
		type = *inner;
		off += 4;
	}
	p->l3 = off;
	p->len = len;
	if (type == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > end)
			return PARSE_SHORT;
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
			return PARSE_SHORT;
		if (ip6->version != 6)
			return PARSE_PASS;
		p->v6 = 1;
		p->proto = ip6->nexthdr;
		p->ttl = ip6->hop_limit;
		__builtin_memcpy(&p->key.src, &ip6->saddr, 16);
		__builtin_memcpy(&p->key.dst, &ip6->daddr, 16);
		p->l4 = off + sizeof(*ip6);
		if (ip6->nexthdr == IPPROTO_FRAGMENT_) {
			*reason = RVS_PUNT_FRAGMENT;
			return PARSE_PUNT;
		}
	} else {
		return PARSE_PASS;
	}
	p->key.proto = p->proto;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + p->l4;

		if ((void *)(tcp + 1) > end)
			return PARSE_SHORT;
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
			return PARSE_SHORT;
		p->key.sport = udp->source;
		p->key.dport = udp->dest;
		p->tcp_flags = 0;
		return PARSE_OK;
	}
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		__u8 *type = data + p->l4;

		if ((void *)(type + 1) > end)
			return PARSE_SHORT;
		/* Errors (about a connection's packet) are rvsd's; the rest (echo, neighbour
		 * discovery) is the kernel's, as rvs-engine passes it. */
		if (p->proto == IPPROTO_ICMP ? !(*type == 3 || *type == 4 || *type == 5 ||
						 *type == 11 || *type == 12)
					     : !(*type >= 1 && *type <= 4))
			return PARSE_PASS;
		*reason = RVS_PUNT_ICMP;
		return PARSE_PUNT;
	}
	/* Another protocol (SCTP, ...): rvsd's if it is for one of its services. */
	*reason = RVS_PUNT_OTHER;
	return PARSE_PUNT;
}

#endif
