/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection states, real servers' counts and the schedulers: IPVS's rules, no packet access. */
#ifndef RVS_LB_SCHED_H
#define RVS_LB_SCHED_H

/* Whether a state counts as active (IPVS: only TCP ESTABLISHED). */
static __always_inline int is_active(__u8 state)
{
	return state == RVS_STATE_ESTABLISHED;
}

/* Moves a real server's count from one state's column to another's (active/inactive). */
static __always_inline void move_count(__u32 dest, __u8 from, __u8 to)
{
	struct rvs_dest_conns *c;

	if (is_active(from) == is_active(to))
		return;
	c = bpf_map_lookup_elem(&dest_conns, &dest);
	if (!c)
		return;
	if (is_active(to)) {
		__sync_fetch_and_add(&c->active, 1);
		__sync_fetch_and_add(&c->inactive, -1);
	} else {
		__sync_fetch_and_add(&c->active, -1);
		__sync_fetch_and_add(&c->inactive, 1);
	}
}

/* IPVS's overhead: active * 256 + inactive. */
static __always_inline __u64 overhead(struct rvs_dest_conns *c)
{
	return ((__u64)c->active << 8) + c->inactive;
}

/* The state after a segment with `flags`; dir 0 INPUT, 1 OUTPUT, 2 INPUT-ONLY. */
static __always_inline __u8 next_state(struct rvs_settings *s, __u8 state, __u32 dir, __u8 flags)
{
	__u32 ev;

	if (flags & TCPF_RST)
		ev = 3;
	else if (flags & TCPF_SYN)
		ev = 0;
	else if (flags & TCPF_FIN)
		ev = 1;
	else if (flags & TCPF_ACK)
		ev = 2;
	else
		return RVS_STATE_CLOSE;
	if (state >= 11 || dir > 2)
		return state;
	return s->tcp_next[dir % 3][ev & 3][state & (RVS_STATE_SLOTS - 1)];
}

static __always_inline __u64 timeout_ns(struct rvs_settings *s, __u8 state)
{
	return (__u64)s->timeout_ms[state & (RVS_STATE_SLOTS - 1)] * 1000000ULL;
}

struct pick {
	__u32 index; /* in the service's dests */
	__u32 slot;
	struct rvs_dest *dest;
	struct rvs_dest_conns *conns;
};

/* Looks up the index-th real server of `sd`; NULL when out of range. */
static __always_inline int dest_at(struct rvs_svc_dests *sd, __u32 i, struct pick *out)
{
	__u32 slot;

	if (i >= RVS_MAX_DESTS || i >= sd->count)
		return 0;
	slot = sd->slot[i];
	out->index = i;
	out->slot = slot;
	out->dest = bpf_map_lookup_elem(&dests, &slot);
	out->conns = bpf_map_lookup_elem(&dest_conns, &slot);
	return out->dest && out->conns;
}

static __always_inline int usable(struct pick *d)
{
	return d->dest->available && d->dest->weight > 0 && !d->conns->overloaded;
}

/* rr (ip_vs_rr_schedule): the first usable server from the cursor's start position on; the
 * cursor then starts after it and names it. */
static __always_inline int sched_rr(struct rvs_svc *svc, struct rvs_svc_dests *sd, struct pick *out)
{
	__u64 *cursor = bpf_map_lookup_elem(&sched_cursor, &svc->id);
	__u32 n = sd->count, start, k;
	__u64 word;

	if (!cursor || n == 0 || n > RVS_MAX_DESTS)
		return 0;
	word = *cursor;
	start = (__u32)(word >> 33);
	for (k = 0; k < RVS_MAX_DESTS; k++) {
		__u32 at;

		if (k >= n)
			break;
		at = (start + k) % n;
		if (dest_at(sd, at, out) && usable(out)) {
			__u64 next = ((__u64)(at + 1) << 33) | RVS_CURSOR_HAS_LOW | out->dest->id;

			__sync_val_compare_and_swap(cursor, word, next);
			return 1;
		}
	}
	return 0;
}

/* What the wrr search callbacks share. */
struct wrr_search {
	struct rvs_svc_dests *sd;
	__u32 base;   /* the service's first step in wrr_seq */
	__u32 n;      /* steps */
	__u32 from;   /* first step to look at */
	__u32 wrap;   /* look at steps modulo n */
	__u32 found;  /* step + 1, 0 while none */
	__u32 level;
	__u32 pos;
	__u32 cw;     /* for the partition search */
};

/* Whether step q of the sequence is usable: its server not overloaded and still of at least
 * the step's weight. */
static __always_inline int wrr_usable(struct wrr_search *ws, __u32 q, __u32 *level, __u32 *pos)
{
	__u32 key = ws->base + q;
	struct rvs_wrr_step *st = bpf_map_lookup_elem(&wrr_seq, &key);
	struct pick d = {};

	if (!st)
		return 0;
	if (!dest_at(ws->sd, st->pos, &d) || !d.dest->available || d.conns->overloaded)
		return 0;
	if (d.dest->weight < st->level)
		return 0;
	*level = st->level;
	*pos = st->pos;
	return 1;
}

static long wrr_scan(__u32 i, struct wrr_search *ws)
{
	__u32 q = ws->from + i;
	__u32 level, pos;

	if (ws->wrap) {
		if (i >= ws->n || ws->n == 0)
			return 1;
		q %= ws->n;
	}
	if (!ws->wrap && q >= ws->n)
		return 1;
	if (wrr_usable(ws, q, &level, &pos)) {
		ws->found = q + 1;
		ws->level = level;
		ws->pos = pos;
		return 1;
	}
	return 0;
}

/* The first step whose weight is at most cw (steps go down by weight). */
static long wrr_partition(__u32 i, struct wrr_search *ws)
{
	__u32 key = ws->base + i;
	struct rvs_wrr_step *st;

	if (i >= ws->n)
		return 1;
	st = bpf_map_lookup_elem(&wrr_seq, &key);
	if (!st || st->level <= ws->cw)
		return 1;
	ws->from = i + 1;
	return 0;
}

/* wrr (ip_vs_wrr_schedule) over the sequence rvsd built from the engine's: the first usable
 * step after the cursor. From the head or above the lowest weight the search ends with the
 * sequence and a miss goes back to the head; from a pick at the lowest weight it goes round
 * once and a miss keeps the cursor (rvs-engine's WrrTable::follow). */
static __always_inline int sched_wrr(struct rvs_svc *svc, struct rvs_svc_dests *sd, struct pick *out)
{
	__u64 *cursor = bpf_map_lookup_elem(&sched_cursor, &svc->id);
	struct wrr_search ws = {};
	__u64 word, next;
	__u32 cw, cl = 0;
	int has_cl;

	if (!cursor || sd->wrr_len == 0 || sd->wrr_len > RVS_WRR_SEQ || sd->wrr_mw == 0)
		return 0;
	word = *cursor;
	cw = (__u32)(word >> 33);
	has_cl = (word & RVS_CURSOR_HAS_LOW) && (__u32)word < sd->wrr_len;
	if (has_cl)
		cl = (__u32)word;
	ws.sd = sd;
	ws.base = svc->id * RVS_WRR_SEQ;
	ws.n = sd->wrr_len;
	if (has_cl && cw <= sd->wrr_di) {
		ws.from = cl + 1;
		ws.wrap = 1;
	} else if (has_cl) {
		ws.from = cl + 1;
	} else {
		ws.cw = cw;
		bpf_loop(RVS_WRR_SEQ, wrr_partition, &ws, 0);
	}
	bpf_loop(RVS_WRR_SEQ, wrr_scan, &ws, 0);
	if (!ws.found) {
		if (!(has_cl && cw <= sd->wrr_di))
			__sync_val_compare_and_swap(cursor, word, (__u64)sd->wrr_mw << 33);
		return 0;
	}
	next = ((__u64)ws.level << 33) | RVS_CURSOR_HAS_LOW | (ws.found - 1);
	__sync_val_compare_and_swap(cursor, word, next);
	return dest_at(sd, ws.pos, out);
}

/* lc, wlc, sed, nq, fo, ovf: one pass over the servers, IPVS's comparisons. */
static __always_inline int sched_scan(struct rvs_svc *svc, struct rvs_svc_dests *sd, struct pick *out)
{
	struct pick best = {}, d = {};
	__u64 best_oh = 0;
	__u32 i, found = 0;

	for (i = 0; i < RVS_MAX_DESTS; i++) {
		__u64 oh = 0;

		if (i >= sd->count)
			break;
		if (!dest_at(sd, i, &d) || !d.dest->available)
			continue;
		if (d.conns->overloaded)
			continue;
		switch (svc->sched) {
		case RVS_SCHED_LC:
			/* weight > 0, least overhead; first among equals. */
			if (d.dest->weight == 0)
				continue;
			oh = overhead(d.conns);
			if (!found || oh < best_oh)
				goto take;
			continue;
		case RVS_SCHED_WLC:
		case RVS_SCHED_SED:
		case RVS_SCHED_NQ:
			if (svc->sched == RVS_SCHED_NQ && d.dest->weight > 0 && d.conns->active == 0) {
				*out = d;
				return 1;
			}
			oh = svc->sched == RVS_SCHED_WLC ? overhead(d.conns) : (__u64)d.conns->active + 1;
			if (!found) {
				if (d.dest->weight == 0)
					continue;
				goto take;
			}
			/* loh * dw > doh * lw: weight-0 servers never win. */
			if (best_oh * d.dest->weight > oh * best.dest->weight)
				goto take;
			continue;
		case RVS_SCHED_FO:
			/* the highest weight; first among equals. */
			if (d.dest->weight == 0)
				continue;
			if (!found || d.dest->weight > best.dest->weight)
				goto take;
			continue;
		case RVS_SCHED_OVF:
			/* among servers whose active connections do not exceed their weight, the
			 * highest weight; first among equals. */
			if (d.dest->weight == 0 || d.conns->active > d.dest->weight)
				continue;
			if (!found || d.dest->weight > best.dest->weight)
				goto take;
			continue;
		default:
			return 0;
		}
take:
		best = d;
		best_oh = oh;
		found = 1;
	}
	if (found)
		*out = best;
	return found;
}

static __always_inline int schedule(struct rvs_svc *svc, struct pick *out)
{
	struct rvs_svc_dests *sd = bpf_map_lookup_elem(&svc_dests, &svc->id);

	if (!sd)
		return 0;
	switch (svc->sched) {
	case RVS_SCHED_RR:
		return sched_rr(svc, sd, out);
	case RVS_SCHED_WRR:
		return sched_wrr(svc, sd, out);
	default:
		return sched_scan(svc, sd, out);
	}
}

/* IPVS's threshold check when a connection binds to a server. */
static __always_inline void bind_dest(struct pick *d)
{
	__u32 total;

	__sync_fetch_and_add(&d->conns->inactive, 1);
	if (d->dest->u_threshold == 0)
		return;
	total = d->conns->active + d->conns->inactive;
	if (total >= d->dest->u_threshold)
		d->conns->overloaded = 1;
}

/* IPVS's unbind: the connection leaves its server's counts, and the server's overload mark
 * clears below the lower threshold (3/4 of the upper one when no lower one is set). */
static __always_inline void unbind_dest(__u32 slot, __u8 state)
{
	struct rvs_dest_conns *c = bpf_map_lookup_elem(&dest_conns, &slot);
	struct rvs_dest *d = bpf_map_lookup_elem(&dests, &slot);
	__u32 total;

	if (!c)
		return;
	if (is_active(state))
		__sync_fetch_and_add(&c->active, -1);
	else
		__sync_fetch_and_add(&c->inactive, -1);
	if (!c->overloaded || !d)
		return;
	total = c->active + c->inactive;
	if (d->l_threshold) {
		if (total < d->l_threshold)
			c->overloaded = 0;
	} else if (d->u_threshold) {
		if (total * 4 < d->u_threshold * 3)
			c->overloaded = 0;
	} else {
		c->overloaded = 0;
	}
}

#endif
