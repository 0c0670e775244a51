/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* FULLNAT: a connection toward a real server gets a local (address, port) from its service's
 * pool that no other live connection to the same real server address and port uses, so the
 * reply tuple (real server, port, local address, local port) names exactly one connection, as
 * in rvs-engine's fullnat.rs. The reply entry in `conns_out` is that tuple: inserting it with
 * BPF_NOEXIST is the allocation (atomic across CPUs), and deleting it with the connection
 * frees the port, so nothing else needs to be kept. The first candidate comes from a hash of
 * the client's tuple; taken ones are skipped, up to LPORT_TRIES per local address. */
#ifndef RVS_LB_FULLNAT_H
#define RVS_LB_FULLNAT_H

#define LPORT_TRIES 16
#define LPORT_SPAN (65536 - RVS_LPORT_MIN)

/* A mix of the client's tuple: where the search for a local port starts. */
static __always_inline __u32 fnat_hash(const struct rvs_conn_key *k)
{
	__u32 h = k->src.w[0] ^ k->src.w[1] ^ k->src.w[2] ^ k->src.w[3];

	h ^= ((__u32)k->sport << 16) | k->dport;
	h *= 0x9e3779b1;
	h ^= h >> 15;
	h *= 0x85ebca77;
	h ^= h >> 13;
	return h;
}

/* Whether `a` is of the packet's family (IPv4-mapped or not). */
static __always_inline int same_family(const struct rvs_addr *a, int v6)
{
	int mapped = a->w[0] == 0 && a->w[1] == 0 && a->w[2] == bpf_htonl(0xffff);

	return mapped != v6;
}

/* Takes a local address and port for connection `c` (its real server filled in) of packet `p`
 * from the pool in `sd`, inserting the reply entry `reply` -> `out` (its key set here, the rest by the
 * caller); fills `c->laddr`,
 * `c->lport` and `reply`. Returns 0 when every candidate is taken. A function of its own (not
 * inlined): its loop's registers would otherwise spill into the hooks' frame, and the 512
 * bytes of BPF stack are for the whole call chain. */
static __attribute__((noinline)) int fnat_take(struct pkt *p, struct rvs_svc_dests *sd, struct rvs_conn *c,
				     struct rvs_conn_key *reply, struct rvs_conn_out *out)
{
	__u32 h = fnat_hash(&p->key), n = sd->laddr_count, a, i;

	if (n == 0 || n > RVS_MAX_LADDRS)
		return 0;
	reply->src = c->daddr;
	reply->sport = c->dport;
	reply->proto = p->proto;
	out->in = p->key;
	for (a = 0; a < RVS_MAX_LADDRS; a++) {
		/* li < n <= RVS_MAX_LADDRS: the mask only shows the verifier the bound. */
		__u32 li = ((h + a) % n) & (RVS_MAX_LADDRS - 1);

		if (a >= n)
			break;
		if (!same_family(&sd->laddr[li], p->v6))
			continue;
		reply->dst = sd->laddr[li];
		for (i = 0; i < LPORT_TRIES; i++) {
			__u16 port = RVS_LPORT_MIN + (h + i * 7919) % LPORT_SPAN;

			reply->dport = bpf_htons(port);
			if (bpf_map_update_elem(&conns_out, reply, out, BPF_NOEXIST) == 0) {
				c->laddr = reply->dst;
				c->lport = reply->dport;
				return 1;
			}
		}
	}
	return 0;
}

#endif
