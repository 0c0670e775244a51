/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The locality-based schedulers, lblc (ip_vs_lblc.c) and lblcr (ip_vs_lblcr.c), as rvs-engine's
 * sched_locality.rs has them: per service, a table keyed by the packet's destination address
 * whose entry names the server (lblc) or the set of servers (lblcr, most recent first) that
 * destination went to. Members are named by dest slot and rvs-engine id, so a removed server
 * (its slot unavailable, or reused by another) no longer matches and leaves the set at its next
 * use. rvsd ages the table as IPVS does. Entries change without a lock (IPVS takes one): two
 * CPUs scheduling new connections for one destination at the same instant may interleave
 * their changes to its entry, at worst leaving an lblcr set with a member twice. */
#ifndef RVS_LB_LOCALITY_H
#define RVS_LB_LOCALITY_H

/* lblcr_expiration: a set unchanged for this long loses its most loaded member. */
#define RVS_LBLCR_EXPIRATION_NS (24ULL * 3600ULL * 1000000000ULL)
/* A member index kept in range for the verifier (RVS_MAX_DESTS is a power of two). */
#define MEMBER(i) ((i) & (RVS_MAX_DESTS - 1))

/* Whether `m` is still one of the service's servers; fills `out`. */
static __always_inline int member_at(struct rvs_loc_member *m, struct pick *out)
{
	return pick_slot(m->slot, out) && out->dest->available && out->dest->id == m->id;
}

/* What the locality loops share. */
struct loc_walk {
	struct rvs_svc_dests *sd;
	struct rvs_loc *en;
	__u32 has_min;
	__u32 max;     /* member index + 1 of the most loaded, 0: none */
	struct rvs_loc_member min; /* the least loaded usable member */
	__u64 min_oh, max_oh;
	__u32 min_w, max_w;
	__u32 from;    /* shift_down: the member index removed */
	struct rvs_loc_member want; /* holds: the member looked for */
	__u32 held;
};

/* What any_light needs. */
struct light_walk {
	struct rvs_svc_dests *sd;
	__u32 light; /* some server is under half its weight */
};

static long any_light(__u32 i, struct light_walk *w)
{
	struct pick d = {};

	if (i >= w->sd->count)
		return 1;
	if (dest_at(w->sd, i, &d) && d.conns->active * 2 < d.dest->weight) {
		w->light = 1;
		return 1;
	}
	return 0;
}

/* The locality `is_overloaded`: more active connections than weight while some server of the
 * service is under half its weight. */
static __always_inline int overloaded_here(struct pick *d, struct rvs_svc_dests *sd)
{
	struct light_walk w = { .sd = sd };

	if (d->conns->active <= d->dest->weight)
		return 0;
	bpf_loop(RVS_MAX_DESTS, any_light, &w, 0);
	return w.light;
}

/* The least loaded server of the service (`__ip_vs_lblc_schedule`): wlc's choice. */
static __always_inline int least_loaded(struct rvs_svc_dests *sd, struct pick *out)
{
	return sched_scan(RVS_SCHED_WLC, sd, out);
}

/* One member of an lblcr set: gone ones dropped (the set compacted in place), the least loaded
 * usable one (`ip_vs_dest_set_min`) and the most loaded of weight > 0 (`ip_vs_dest_set_max`)
 * found, both as IPVS compares them. */
static long set_scan(__u32 i, struct loc_walk *w)
{
	struct rvs_loc *en = w->en;
	struct pick d = {};
	/* The compaction cursor lives in the entry, not in `w`: read from a map it is one
	 * unknown value to the verifier, which then checks this body once, not once per count. */
	__u32 k = en->kept;
	__u64 oh;

	if (i >= en->n || i >= RVS_MAX_DESTS || k >= RVS_MAX_DESTS)
		return 1;
	if (!member_at(&en->m[MEMBER(i)], &d))
		return 0;
	en->m[MEMBER(k)] = en->m[MEMBER(i)];
	en->kept = k + 1;
	oh = overhead(d.conns);
	if (!d.conns->overloaded &&
	    (w->has_min ? w->min_oh * d.dest->weight > oh * w->min_w : d.dest->weight > 0)) {
		w->has_min = 1;
		w->min = en->m[MEMBER(k)];
		w->min_oh = oh;
		w->min_w = d.dest->weight;
	}
	if (d.dest->weight > 0 && (!w->max || w->max_oh * d.dest->weight < oh * w->max_w)) {
		w->max = k + 1;
		w->max_oh = oh;
		w->max_w = d.dest->weight;
	}
	return 0;
}

/* Moves the members after index `from` one place toward the front (removing `from`). */
static long shift_down(__u32 i, struct loc_walk *w)
{
	__u32 at = w->from + i;

	if (at + 1 >= w->en->n || at + 1 >= RVS_MAX_DESTS)
		return 1;
	w->en->m[MEMBER(at)] = w->en->m[MEMBER(at + 1)];
	return 0;
}

/* Moves the members one place toward the back (from the last), making room at the front. */
static long shift_up(__u32 i, struct loc_walk *w)
{
	__u32 at = w->en->n - i;

	if (i >= w->en->n || at == 0 || at >= RVS_MAX_DESTS)
		return 1;
	w->en->m[MEMBER(at)] = w->en->m[MEMBER(at - 1)];
	return 0;
}

/* Whether the lblcr set holds `w->want`. */
static long holds(__u32 i, struct loc_walk *w)
{
	if (i >= w->en->n || i >= RVS_MAX_DESTS)
		return 1;
	if (w->en->m[MEMBER(i)].slot == w->want.slot && w->en->m[MEMBER(i)].id == w->want.id) {
		w->held = 1;
		return 1;
	}
	return 0;
}

/* A new entry for the destination of `k`, naming the server `d`. */
static __always_inline void loc_new(struct rvs_loc_key *k, struct pick *d, __u64 now)
{
	__u32 zero = 0;
	struct rvs_loc *en = bpf_map_lookup_elem(&loc_scratch, &zero);

	if (!en)
		return;
	__builtin_memset(en, 0, sizeof(*en));
	en->lastuse_ns = now;
	en->lastmod_ns = now;
	en->n = 1;
	en->m[0].slot = d->slot;
	en->m[0].id = d->dest->id;
	/* A full table (or another CPU first) leaves the pick as it is, as IPVS's failed
	 * allocation does. */
	bpf_map_update_elem(&locality, k, en, BPF_ANY);
}

/* lblc (`ip_vs_lblc_schedule`): the destination's server while it has weight and is not
 * overloaded, else the least loaded one, remembered. */
static __always_inline int sched_lblc(struct rvs_svc_dests *sd, struct rvs_loc_key *k,
				      struct rvs_loc *en, __u64 now, struct pick *out)
{
	if (en) {
		en->lastuse_ns = now;
		if (en->n > 0 && member_at(&en->m[0], out) && out->dest->weight > 0 &&
		    !overloaded_here(out, sd))
			return 1;
	}
	if (!least_loaded(sd, out))
		return 0;
	if (en) {
		en->m[0].slot = out->slot;
		en->m[0].id = out->dest->id;
		en->n = 1;
	} else {
		loc_new(k, out, now);
	}
	return 1;
}

/* lblcr (`ip_vs_lblcr_schedule`): the least loaded server of the destination's set unless it is
 * overloaded, else the least loaded of all, added to the set; a set unchanged for
 * RVS_LBLCR_EXPIRATION_NS loses its most loaded member. */
static __always_inline int sched_lblcr(struct rvs_svc_dests *sd, struct rvs_loc_key *k,
				       struct rvs_loc *en, __u64 now, struct pick *out)
{
	struct loc_walk w = { .sd = sd, .en = en };

	if (!en) {
		if (!least_loaded(sd, out))
			return 0;
		loc_new(k, out, now);
		return 1;
	}
	en->lastuse_ns = now;
	en->kept = 0;
	bpf_loop(RVS_MAX_DESTS, set_scan, &w, 0);
	en->n = en->kept;
	if (en->n > 1 && now > en->lastmod_ns + RVS_LBLCR_EXPIRATION_NS && w.max) {
		w.from = w.max - 1;
		bpf_loop(RVS_MAX_DESTS, shift_down, &w, 0);
		en->n--;
		en->lastmod_ns = now;
	}
	/* The least loaded member as found before any removal, as IPVS takes it. */
	if (w.has_min && member_at(&w.min, out) && !overloaded_here(out, sd))
		return 1;
	if (!least_loaded(sd, out))
		return 0;
	w.want.slot = out->slot;
	w.want.id = out->dest->id;
	bpf_loop(RVS_MAX_DESTS, holds, &w, 0);
	if (!w.held && en->n < RVS_MAX_DESTS) {
		bpf_loop(RVS_MAX_DESTS, shift_up, &w, 0);
		en->m[0] = w.want;
		en->n++;
		en->lastmod_ns = now;
	}
	return 1;
}

/* lblc and lblcr (`sched_flags` as rvs_pick's): the table entry of the packet's destination,
 * then the scheduler's rule; the dest slot plus one, 0 for none. A global function of its own,
 * called beside rvs_pick rather than from it: BPF's 512 bytes of stack are for the whole call
 * chain. */
__attribute__((noinline)) int rvs_pick_locality(__u32 id, __u32 sched_flags, struct pkt *p)
{
	struct rvs_loc_key k = {};
	struct pick pick = {};
	struct rvs_svc_dests *sd;
	struct rvs_loc *en;
	__u64 now = bpf_ktime_get_coarse_ns();
	int found;

	if (!p)
		return 0;
	sd = bpf_map_lookup_elem(&svc_dests, &id);
	if (!sd)
		return 0;
	k.dst = p->key.dst;
	k.svc = id;
	en = bpf_map_lookup_elem(&locality, &k);
	if ((sched_flags & 0xff) == RVS_SCHED_LBLC)
		found = sched_lblc(sd, &k, en, now, &pick);
	else
		found = sched_lblcr(sd, &k, en, now, &pick);
	return found ? pick.slot + 1 : 0;
}

/* A new connection's server, by the service's scheduler: the dest slot plus one, 0 for none.
 * One call site for both global schedulers, so that the verifier walks the rest of the
 * new-connection path once, not once per scheduler family. */
__attribute__((noinline)) int rvs_schedule(__u32 id, __u32 sched_flags, struct pkt *p)
{
	__u32 sched = sched_flags & 0xff;

	if (sched == RVS_SCHED_LBLC || sched == RVS_SCHED_LBLCR)
		return rvs_pick_locality(id, sched_flags, p);
	return rvs_pick(id, sched_flags, p);
}

#endif
