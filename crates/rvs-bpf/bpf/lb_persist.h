/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Persistence (`-p`, `-M`): IPVS's `ip_vs_sched_persist` as rvs-engine's persist.rs has it. One
 * template per (service, client address masked, virtual port) records the real server the
 * client's connections go to; a new connection of that client reuses it while the template
 * lives (its timer re-armed to the persistence timeout by each new connection, and kept while
 * connections it controls live) and its server is available (and, with
 * expire_quiescent_template, has a weight). */
#ifndef RVS_LB_PERSIST_H
#define RVS_LB_PERSIST_H

/* The template key of a client's packet `p` to service `id` (`any_port`: a port-0 service). */
static __always_inline void tpl_key_of(struct rvs_tpl_key *k, struct rvs_svc_dests *sd, __u32 id,
				       const struct rvs_conn_key *key, int any_port)
{
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		k->client.w[i] = key->src.w[i] & sd->persist_mask.w[i];
	k->svc = id;
	k->vport = any_port ? 0 : key->dport;
	k->proto = key->proto;
	k->pad = 0;
}


/* The scheduler's pick for a new connection of service `id` (its scheduler and flags in
 * `sched_flags`: sched | flags << 8) from packet `p`: the dest slot plus one, 0 for none. A
 * global function: the verifier checks it once, not again on every path that schedules
 * (the scheduler's branches times the new-connection paths would exceed its budget). */
__attribute__((noinline)) int rvs_pick(__u32 id, __u32 sched_flags, struct pkt *p)
{
	struct rvs_svc svc = {};
	struct pick pick = {};

	if (!p)
		return 0;
	svc.id = id;
	svc.sched = sched_flags & 0xff;
	svc.flags = (sched_flags >> 8) & 0xff;
	if (!schedule(&svc, p, &pick))
		return 0;
	return pick.slot + 1;
}

#include "lb_locality.h"

/* Whether a template's server may take its client's new connections (`out` filled). */
static __always_inline int tpl_dest_valid(struct rvs_settings *s, __u32 slot, struct pick *out)
{
	if (!pick_slot(slot, out) || !out->dest->available)
		return 0;
	return !(s->expire_quiescent_template && out->dest->weight == 0);
}

/* Persistent scheduling, first half: the client's live template's server, its template
 * re-armed. Returns 0 when the client has no usable template (the scheduler picks, then
 * persist_record keeps the pick); an unusable one is taken out. */
static __always_inline int persist_lookup(struct pkt *p, struct rvs_settings *s, struct rvs_svc *svc,
					  int any_port, __u64 now, struct pick *out)
{
	struct rvs_svc_dests *sd = bpf_map_lookup_elem(&svc_dests, &svc->id);
	struct rvs_tpl_key k = {};
	struct rvs_tpl *old;

	if (!sd)
		return 0;
	tpl_key_of(&k, sd, svc->id, &p->key, any_port);
	old = bpf_map_lookup_elem(&templates, &k);
	if (!old)
		return 0;
	if ((old->expires_ns > now || old->n_control > 0) && tpl_dest_valid(s, old->dest, out)) {
		old->expires_ns = now + (__u64)sd->persist_ms * 1000000ULL;
		note_expiry(old->expires_ns);
		return 1;
	}
	bpf_map_delete_elem(&templates, &k);
	return 0;
}

/* Persistent scheduling, second half: a new template records the scheduler's pick `out`. When
 * another CPU made one first, its server is taken instead (0 when it cannot be: `*full` set
 * when the table is full). */
static __always_inline int persist_record(struct pkt *p, struct rvs_settings *s, struct rvs_svc *svc,
					  int any_port, __u64 now, struct pick *out, int *full)
{
	struct rvs_svc_dests *sd = bpf_map_lookup_elem(&svc_dests, &svc->id);
	__u32 zero = 0;
	/* Per-CPU scratch, as in open_conn: the stack is short. */
	struct conn_scratch *w = bpf_map_lookup_elem(&conn_scratch, &zero);
	struct rvs_tpl *old;

	if (!sd || !w)
		return 0;
	tpl_key_of(&w->tpl_key, sd, svc->id, &p->key, any_port);
	__builtin_memset(&w->tpl, 0, sizeof(w->tpl));
	w->tpl.expires_ns = now + (__u64)sd->persist_ms * 1000000ULL;
	note_expiry(w->tpl.expires_ns);
	w->tpl.dest = out->slot;
	w->tpl.timeout_ms = sd->persist_ms;
	w->tpl.dport = any_port ? 0 : out->dest->port;
	w->tpl.gen = bpf_get_prandom_u32();
	if (bpf_map_update_elem(&templates, &w->tpl_key, &w->tpl, BPF_NOEXIST) == 0)
		return 1;
	old = bpf_map_lookup_elem(&templates, &w->tpl_key);
	if (!old) {
		*full = 1;
		return 0;
	}
	return tpl_dest_valid(s, old->dest, out);
}

/* A new connection (`key`, flags `flags`) of service `id` comes under its template (`add`:
 * returns the template's generation for the connection to keep), or one under the template
 * of generation `gen` goes away. A template replaced meanwhile (same key, another
 * generation) is not the connection's: it is left alone, as IPVS's connection points to its
 * own template. */
static __always_inline __u16 tpl_control(__u32 id, const struct rvs_conn_key *key, __u8 flags,
					 int add, __u16 gen)
{
	struct rvs_svc_dests *sd = bpf_map_lookup_elem(&svc_dests, &id);
	__u32 zero = 0;
	struct conn_scratch *w = bpf_map_lookup_elem(&conn_scratch, &zero);
	struct rvs_tpl *t;

	if (!sd || !w || !(flags & RVS_CONN_F_TEMPLATE))
		return 0;
	tpl_key_of(&w->tpl_key, sd, id, key, flags & RVS_CONN_F_ANY_PORT);
	t = bpf_map_lookup_elem(&templates, &w->tpl_key);
	if (!t)
		return 0;
	if (add) {
		__sync_fetch_and_add(&t->n_control, 1);
		return t->gen;
	}
	if (t->gen == gen && t->n_control > 0)
		__sync_fetch_and_add(&t->n_control, -1);
	return 0;
}

#endif
