/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A NAT connection's two entries: its key in `conns` and its reply tuple in `conns_out`, and
 * what the reply entry keeps of the connection (its state among it) for plain replies. */
#ifndef RVS_LB_CONN_H
#define RVS_LB_CONN_H

/* The reply tuple of NAT connection `c` (key `key`): from its real server to its client, or
 * for FULLNAT to its local address. */
static __always_inline void reply_key_of(struct rvs_conn_key *key, struct rvs_conn *c,
					 struct rvs_conn_key *reply)
{
	reply->src = c->daddr;
	reply->sport = c->dport;
	if (c->method == RVS_METHOD_FULLNAT) {
		reply->dst = c->laddr;
		reply->dport = c->lport;
	} else {
		reply->dst = key->src;
		reply->dport = key->sport;
	}
	reply->proto = key->proto;
	reply->pad[0] = reply->pad[1] = reply->pad[2] = 0;
}

/* Writes what the reply entry `out` of connection `c` (key `key`) holds of it. */
static __always_inline void out_of(struct rvs_conn_out *out, struct rvs_conn_key *key,
				   struct rvs_conn *c)
{
	out->in = *key;
	out->expires_ns = c->expires_ns;
	out->svc = c->svc;
	out->dest = c->dest;
	out->state = c->state;
	out->method = c->method;
	out->flags = (c->flags & RVS_CONN_F_SEQ_SHIFT) ? RVS_OUT_F_FULL_PATH : 0;
}

/* Carries connection `c`'s new state and expiry (and sequence shift) into its reply entry,
 * where a plain reply reads them (NAT connections; others have none). A function of its own (not inlined): a
 * state change is rare, and its locals would otherwise take room in the hooks' frame (the 512
 * bytes of BPF stack are for the whole call chain). */
static __attribute__((noinline)) void mirror_conn(struct rvs_conn_key *key, struct rvs_conn *c)
{
	__u32 zero = 0;
	struct conn_scratch *w;
	struct rvs_conn_out *out;

	if (c->method != RVS_METHOD_MASQ && c->method != RVS_METHOD_FULLNAT)
		return;
	w = bpf_map_lookup_elem(&conn_scratch, &zero);
	if (!w)
		return;
	reply_key_of(key, c, &w->reply);
	out = bpf_map_lookup_elem(&conns_out, &w->reply);
	if (!out)
		return;
	out->state = c->state;
	out->expires_ns = c->expires_ns;
	out->flags = (c->flags & RVS_CONN_F_SEQ_SHIFT) ? RVS_OUT_F_FULL_PATH : 0;
}

#endif
