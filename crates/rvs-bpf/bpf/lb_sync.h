/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection synchronization, program side: the master's export of connection changes (IPVS's
 * `ip_vs_sync_conn_needed` with sync_refresh_period 0, as rvs-engine's sync_state.rs has it) to
 * `sync_ring`, and the backup's install of a synced connection (rvs_sync_in in rvs_lb.c). */
#ifndef RVS_LB_SYNC_H
#define RVS_LB_SYNC_H

/* Counts an incoming packet of `c` and says whether IPVS would sync the connection now: TCP
 * only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT or TIME_WAIT, at once on entering one of
 * those other than ESTABLISHED, else (and UDP always) when the incoming packet count modulo
 * the period equals the threshold. */
static __always_inline int sync_due(struct rvs_settings *s, __u8 proto, struct rvs_conn *c)
{
	__u8 state = c->state;
	__u32 pkts;

	c->sync_pkts++;
	if (proto == IPPROTO_TCP) {
		if (state != RVS_STATE_ESTABLISHED && state != RVS_STATE_FIN_WAIT &&
		    state != RVS_STATE_CLOSE && state != RVS_STATE_CLOSE_WAIT &&
		    state != RVS_STATE_TIME_WAIT)
			return 0;
		if (state != c->sync_state && state != RVS_STATE_ESTABLISHED)
			goto due;
	}
	pkts = c->sync_pkts;
	if (s->sync_period ? pkts % s->sync_period != s->sync_threshold : pkts != s->sync_threshold)
		return 0;
due:
	c->sync_state = state;
	return 1;
}

/* Sends the template controlling connection `c` (key `key`) to the sync master's ring. */
static __always_inline void sync_emit_template(struct rvs_conn_key *key, struct rvs_conn *c)
{
	struct rvs_svc_dests *sd = bpf_map_lookup_elem(&svc_dests, &c->svc);
	struct rvs_sync_event *e;
	struct rvs_tpl_key k = {};
	struct rvs_dest *d;
	struct rvs_tpl *t;

	if (!sd)
		return;
	tpl_key_of(&k, sd, c->svc, key, c->flags & RVS_CONN_F_ANY_PORT);
	t = bpf_map_lookup_elem(&templates, &k);
	if (!t)
		return;
	d = bpf_map_lookup_elem(&dests, &t->dest);
	if (!d)
		return;
	e = bpf_ringbuf_reserve(&sync_ring, sizeof(*e), 0);
	if (!e) {
		count(RVS_STAT_SYNC_LOST);
		return;
	}
	__builtin_memset(&e->key, 0, sizeof(e->key));
	e->key.src = k.client;
	e->key.dst = key->dst;
	e->key.dport = k.vport;
	e->key.proto = key->proto;
	e->daddr = d->addr;
	e->dport = t->dport;
	e->state = 0;
	e->method = d->method;
	e->timeout_ms = t->timeout_ms;
	e->flags = RVS_SYNC_EV_TEMPLATE;
	e->pad = 0;
	__builtin_memset(&e->laddr, 0, sizeof(e->laddr));
	e->lport = 0;
	e->pad2 = 0;
	e->seq_delta = 0;
	bpf_ringbuf_submit(e, 0);
}

/* Sends connection `c` (key `key`) to the sync master's ring, then its template if a template
 * controls it (as IPVS syncs a connection's template with it); a full ring loses a record,
 * counted. */
static __always_inline void sync_emit(struct rvs_settings *s, struct rvs_conn_key *key,
				      struct rvs_conn *c)
{
	struct rvs_sync_event *e = bpf_ringbuf_reserve(&sync_ring, sizeof(*e), 0);

	if (!e) {
		count(RVS_STAT_SYNC_LOST);
		return;
	}
	e->key = *key;
	e->daddr = c->daddr;
	e->dport = c->dport;
	e->state = c->state;
	e->method = c->method;
	e->timeout_ms = s->timeout_ms[c->state & (RVS_STATE_SLOTS - 1)];
	e->flags = 0;
	e->pad = 0;
	e->laddr = c->laddr;
	e->lport = c->lport;
	e->pad2 = 0;
	if (c->flags & RVS_CONN_F_SEQ_SHIFT) {
		e->flags = RVS_SYNC_EV_SEQ_SHIFT;
		e->seq_delta = c->seq_delta;
	} else {
		e->seq_delta = 0;
	}
	bpf_ringbuf_submit(e, 0);
	if (c->flags & RVS_CONN_F_TEMPLATE)
		sync_emit_template(key, c);
}

/* An incoming packet of connection `c` was handled: export it when a master runs and IPVS
 * would. */
static __always_inline void sync_note(struct rvs_settings *s, struct rvs_conn_key *key,
				      struct rvs_conn *c)
{
	if (s->sync_export && sync_due(s, key->proto, c))
		sync_emit(s, key, c);
}

/* IPVS's threshold check when a connection binds to the server in `slot` (see bind_dest). */
static __always_inline void bind_slot(__u32 slot)
{
	struct rvs_dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	struct rvs_dest *d = bpf_map_lookup_elem(&dests, &slot);

	if (!c)
		return;
	__sync_fetch_and_add(&c->inactive, 1);
	if (d && d->u_threshold && c->active + c->inactive >= d->u_threshold)
		c->overloaded = 1;
}

/* Installs (or refreshes) a synced template: an existing one to the same server and port gets
 * the new timeout, any other is replaced. */
static __always_inline int sync_install_template(struct rvs_sync_in *in)
{
	struct rvs_tpl_key k = {};
	struct rvs_tpl t = {};
	struct rvs_tpl *old;

	k.client = in->key.src;
	k.svc = in->svc;
	k.vport = in->key.dport;
	k.proto = in->key.proto;
	t.expires_ns = bpf_ktime_get_ns() + (__u64)in->timeout_ms * 1000000ULL;
	note_expiry(t.expires_ns);
	old = bpf_map_lookup_elem(&templates, &k);
	if (old && old->dest == in->dest && old->dport == in->dport) {
		old->expires_ns = t.expires_ns;
		return RVS_SYNC_IN_REFRESHED;
	}
	t.dest = in->dest;
	t.timeout_ms = in->timeout_ms;
	t.dport = in->dport;
	t.gen = bpf_get_prandom_u32();
	if (bpf_map_update_elem(&templates, &k, &t, BPF_ANY) < 0)
		return RVS_SYNC_IN_FULL;
	return RVS_SYNC_IN_ADDED;
}

/* Installs (or refreshes) a synced connection, as IPVS's backup does: it takes the record's
 * state and timeout and counts toward its server's active or inactive connections. */
static __always_inline int sync_install(struct rvs_sync_in *in)
{
	__u64 expires = bpf_ktime_get_ns() + (__u64)in->timeout_ms * 1000000ULL;
	struct rvs_conn *old = bpf_map_lookup_elem(&conns, &in->key);
	struct rvs_conn_key reply = {};
	struct rvs_conn_out out = {};
	struct rvs_conn c = {};
	int fnat = in->method == RVS_METHOD_FULLNAT;
	int nat = in->method == RVS_METHOD_MASQ || fnat;

	if (in->flags & RVS_SYNC_EV_TEMPLATE)
		return sync_install_template(in);
	note_expiry(expires);
	if (old) {
		if ((in->flags & RVS_SYNC_EV_SEQ_SHIFT) &&
		    (old->method == RVS_METHOD_MASQ || old->method == RVS_METHOD_FULLNAT)) {
			old->seq_delta = in->seq_delta;
			old->flags |= RVS_CONN_F_SEQ_SHIFT;
		}
		if (old->state != in->state) {
			move_count(old->dest, old->state, in->state);
			old->state = in->state;
		}
		old->sync_state = in->state;
		old->expires_ns = expires;
		mirror_conn(&in->key, old);
		return RVS_SYNC_IN_REFRESHED;
	}
	c.daddr = in->daddr;
	c.dport = in->dport;
	c.state = in->state;
	c.sync_state = in->state;
	c.flags = nat ? 0 : RVS_CONN_F_NOOUTPUT;
	if (nat && (in->flags & RVS_SYNC_EV_SEQ_SHIFT)) {
		c.flags |= RVS_CONN_F_SEQ_SHIFT;
		c.seq_delta = in->seq_delta;
	}
	c.dest = in->dest;
	c.svc = in->svc;
	c.method = in->method;
	c.expires_ns = expires;
	c.laddr = in->laddr;
	c.lport = in->lport;
	if (nat) {
		reply.src = c.daddr;
		reply.dst = fnat ? in->laddr : in->key.src;
		reply.sport = c.dport;
		reply.dport = fnat ? in->lport : in->key.sport;
		reply.proto = in->key.proto;
		out_of(&out, &in->key, &c);
		if (bpf_map_update_elem(&conns_out, &reply, &out, BPF_NOEXIST) < 0)
			return RVS_SYNC_IN_FULL;
	}
	if (bpf_map_update_elem(&conns, &in->key, &c, BPF_NOEXIST) < 0) {
		if (nat)
			bpf_map_delete_elem(&conns_out, &reply);
		return RVS_SYNC_IN_FULL;
	}
	bind_slot(c.dest);
	if (is_active(c.state))
		move_count(c.dest, RVS_STATE_NONE, c.state);
	return RVS_SYNC_IN_ADDED;
}

#endif
