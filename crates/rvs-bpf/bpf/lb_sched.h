/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection states, real servers' counts and the schedulers: IPVS's rules, no packet access. */
#ifndef RVS_LB_SCHED_H
#define RVS_LB_SCHED_H

/* Whether a state counts as active (IPVS's tcp_state_active: ESTABLISHED, and SYNACK, which
 * only secure_tcp's table reaches). */
static __always_inline int is_active(__u8 state)
{
	return state == RVS_STATE_ESTABLISHED || state == RVS_STATE_SYNACK;
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

/* Fills `out` for the server in dest slot `slot`; 0 when it is gone. */
static __always_inline int pick_slot(__u32 slot, struct pick *out)
{
	out->slot = slot;
	out->dest = bpf_map_lookup_elem(&dests, &slot);
	out->conns = bpf_map_lookup_elem(&dest_conns, &slot);
	return out->dest && out->conns;
}

/* Looks up the index-th real server of `sd`; 0 when out of range. */
static __always_inline int dest_at(struct rvs_svc_dests *sd, __u32 i, struct pick *out)
{
	if (i >= RVS_MAX_DESTS || i >= sd->count)
		return 0;
	out->index = i;
	return pick_slot(sd->slot[i], out);
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
	ws.base = sd->table * RVS_WRR_SEQ;
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

/* What a scan scheduler's pass over the servers keeps (scan_step). */
struct scan_walk {
	struct rvs_svc_dests *sd;
	__u32 sched;   /* RVS_SCHED_LC, _WLC, _SED, _NQ, _FO or _OVF */
	__u32 found;   /* a server is chosen */
	__u32 final;   /* nq's idle server: no other can win */
	__u32 index;   /* the chosen one's index in the service */
	__u64 oh;      /* its overhead, as the scheduler counts it */
	__u32 weight;  /* its weight */
};

/* One server of lc, wlc, sed, nq, fo or ovf, with IPVS's comparisons; unavailable and
 * overloaded servers are skipped. A bpf_loop callback: the verifier checks it once. */
static long scan_step(__u32 i, struct scan_walk *w)
{
	struct pick d = {};
	__u64 oh = 0;
	__u32 wt;

	if (i >= w->sd->count)
		return 1;
	if (!dest_at(w->sd, i, &d) || !d.dest->available || d.conns->overloaded)
		return 0;
	wt = d.dest->weight;
	switch (w->sched) {
	case RVS_SCHED_LC:
		/* weight > 0, least overhead; first among equals. */
		oh = overhead(d.conns);
		if (wt == 0 || (w->found && oh >= w->oh))
			return 0;
		break;
	case RVS_SCHED_WLC:
	case RVS_SCHED_SED:
	case RVS_SCHED_NQ:
		if (w->sched == RVS_SCHED_NQ && wt > 0 && d.conns->active == 0) {
			w->final = 1;
			break;
		}
		oh = w->sched == RVS_SCHED_WLC ? overhead(d.conns) : (__u64)d.conns->active + 1;
		/* The first of weight > 0, then loh * dw > doh * lw: weight-0 servers never win. */
		if (w->found ? !(w->oh * wt > oh * w->weight) : wt == 0)
			return 0;
		break;
	case RVS_SCHED_FO:
		/* the highest weight; first among equals. */
		if (wt == 0 || (w->found && wt <= w->weight))
			return 0;
		break;
	case RVS_SCHED_OVF:
		/* among servers whose active connections do not exceed their weight, the highest
		 * weight; first among equals. */
		if (wt == 0 || d.conns->active > wt || (w->found && wt <= w->weight))
			return 0;
		break;
	default:
		return 1;
	}
	w->found = 1;
	w->index = i;
	w->oh = oh;
	w->weight = wt;
	return w->final ? 1 : 0;
}

/* lc, wlc, sed, nq, fo, ovf (`sched`): one pass over the servers of `sd`. */
static __always_inline int sched_scan(__u32 sched, struct rvs_svc_dests *sd, struct pick *out)
{
	struct scan_walk w = { .sd = sd, .sched = sched };

	bpf_loop(RVS_MAX_DESTS, scan_step, &w, 0);
	return w.found && dest_at(sd, w.index, out);
}

/* An address folded to 32 bits as IPVS does: the IPv4 address, or the XOR of an IPv6
 * address's words, in host order. */
static __always_inline __u32 fold_addr(const struct rvs_addr *a, int v6)
{
	if (!v6)
		return bpf_ntohl(a->w[3]);
	return bpf_ntohl(a->w[0] ^ a->w[1] ^ a->w[2] ^ a->w[3]);
}

/* The kernel's hash_32 with 8 bits (sh and dh's 256 buckets). */
static __always_inline __u32 hash_32_8(__u32 v)
{
	return (v * 0x61C88647U) >> 24;
}

static __always_inline __u64 rol64(__u64 v, int s)
{
	return (v << s) | (v >> (64 - s));
}

#define SIPROUND(v0, v1, v2, v3)                                                               \
	do {                                                                                    \
		v0 += v1;                                                                       \
		v1 = rol64(v1, 13) ^ v0;                                                        \
		v0 = rol64(v0, 32);                                                             \
		v2 += v3;                                                                       \
		v3 = rol64(v3, 16) ^ v2;                                                        \
		v0 += v3;                                                                       \
		v3 = rol64(v3, 21) ^ v0;                                                        \
		v2 += v1;                                                                       \
		v1 = rol64(v1, 17) ^ v2;                                                        \
		v2 = rol64(v2, 32);                                                             \
	} while (0)

/* The kernel's 64-bit hsiphash of one 32-bit word (SipHash-1-3) with IPVS's mh key
 * (2654435761 in both halves), truncated to 32 bits. */
static __always_inline __u32 mh_hash(__u32 v)
{
	const __u64 k = 2654435761ULL;
	__u64 v0 = 0x736f6d6570736575ULL ^ k, v1 = 0x646f72616e646f6dULL ^ k;
	__u64 v2 = 0x6c7967656e657261ULL ^ k, v3 = 0x7465646279746573ULL ^ k;
	__u64 b = (4ULL << 56) | v;

	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

/* The server of entry `e` of the service's table, if it may take the connection (IPVS's
 * is_unavailable: weight 0 or overloaded); its index in the service's dests goes to *index. */
static __always_inline int hash_entry(struct rvs_svc_dests *sd, __u32 e, __u32 *index)
{
	__u32 key = sd->table * RVS_HASH_STRIDE + e;
	__u32 *pos = bpf_map_lookup_elem(&hash_tab, &key);
	struct pick d = {};

	if (!pos || !dest_at(sd, *pos, &d))
		return 0;
	*index = *pos;
	return d.dest->weight != 0 && !d.conns->overloaded;
}

/* What the sh and mh fallback loops share. */
struct hash_search {
	struct rvs_svc_dests *sd;
	__u32 base;  /* sh: the hashed key; mh: port + folded address */
	__u32 ihash; /* the first entry */
	__u32 len;   /* entries */
	__u32 found;
	__u32 index; /* the server found, in the service's dests */
};

static long sh_fallback(__u32 offset, struct hash_search *hs)
{
	__u32 roffset = (offset + hs->ihash) % 256;

	if (hash_entry(hs->sd, (roffset + hs->base) & 255, &hs->index)) {
		hs->found = 1;
		return 1;
	}
	return 0;
}

static long mh_fallback(__u32 offset, struct hash_search *hs)
{
	__u32 roffset, e;

	if (offset >= hs->len)
		return 1;
	roffset = (offset + hs->ihash) % hs->len;
	e = mh_hash(roffset + hs->base) % hs->len;
	if (hash_entry(hs->sd, e, &hs->index)) {
		hs->found = 1;
		return 1;
	}
	return 0;
}

/* sh (ip_vs_sh_schedule) and mh (ip_vs_mh_schedule) over rvs-engine's table: the source
 * address (and port with sh-port/mh-port) picks an entry; with fallback an unavailable server
 * is skipped by rehashing with growing offsets. */
static __always_inline int sched_src_hash(struct rvs_svc *svc, struct rvs_svc_dests *sd,
					  struct pkt *p, struct pick *out)
{
	struct hash_search hs = { .sd = sd };
	__u32 port = (svc->flags & RVS_SVC_F_PORT) ? bpf_ntohs(p->key.sport) : 0;
	__u32 a = fold_addr(&p->key.src, p->v6);

	if (sd->hash_len == 0 || sd->hash_len > RVS_HASH_STRIDE)
		return 0;
	hs.len = sd->hash_len;
	if (svc->sched == RVS_SCHED_SH) {
		hs.base = hash_32_8(port + a);
		hs.ihash = hs.base & 255;
	} else {
		hs.base = port + a;
		hs.ihash = mh_hash(hs.base) % hs.len;
	}
	if (hash_entry(sd, hs.ihash, &hs.index))
		return dest_at(sd, hs.index, out);
	if (!(svc->flags & RVS_SVC_F_FALLBACK))
		return 0;
	if (svc->sched == RVS_SCHED_SH)
		bpf_loop(256, sh_fallback, &hs, 0);
	else
		bpf_loop(RVS_HASH_STRIDE, mh_fallback, &hs, 0);
	return hs.found && dest_at(sd, hs.index, out);
}

/* dh (ip_vs_dh_schedule): the destination address picks a bucket; its server must be usable. */
static __always_inline int sched_dh(struct rvs_svc *svc, struct rvs_svc_dests *sd, struct pkt *p,
				    struct pick *out)
{
	__u32 index;

	if (sd->hash_len == 0)
		return 0;
	if (!hash_entry(sd, hash_32_8(fold_addr(&p->key.dst, p->v6)), &index))
		return 0;
	return dest_at(sd, index, out);
}

/* twos's generator: rvs-engine's xorshift64* (its cursor word is the state). */
static __always_inline __u32 rng_next(__u64 *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return (__u32)((*x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* What twos's loops share. */
struct twos_walk {
	struct rvs_svc_dests *sd;
	__s64 total;
	__s64 r1, r2;
	__s64 w1, w2, oh1, oh2;
	__u32 i1, i2, last;
	__u32 have1, have2, any;
};

/* The sum of usable weights and the last usable server. */
static long twos_sum(__u32 i, struct twos_walk *tw)
{
	struct pick d = {};

	if (i >= tw->sd->count)
		return 1;
	if (dest_at(tw->sd, i, &d) && usable(&d)) {
		tw->total += d.dest->weight;
		tw->last = i;
		tw->any = 1;
	}
	return 0;
}

/* The two weighted picks. */
static long twos_choose(__u32 i, struct twos_walk *tw)
{
	struct pick d = {};
	__s64 w;

	if (i >= tw->sd->count)
		return 1;
	if (!dest_at(tw->sd, i, &d) || !usable(&d))
		return 0;
	w = d.dest->weight;
	tw->r1 -= w;
	tw->r2 -= w;
	if (tw->r1 <= 0 && !tw->have1) {
		tw->i1 = i;
		tw->w1 = w;
		tw->oh1 = overhead(d.conns);
		tw->have1 = 1;
	}
	if (tw->r2 <= 0 && !tw->have2) {
		tw->i2 = i;
		tw->w2 = w;
		tw->oh2 = overhead(d.conns);
		tw->have2 = 1;
	}
	return tw->have1 && tw->have2;
}

/* twos (ip_vs_twos_schedule): two weighted random picks in [0, total weight], the one with
 * the smaller overhead / weight wins (the first on ties), as rvs-engine's twos_pick. */
static __always_inline int sched_twos(struct rvs_svc *svc, struct rvs_svc_dests *sd, struct pick *out)
{
	__u64 *cursor = bpf_map_lookup_elem(&sched_cursor, &svc->id);
	struct twos_walk tw = { .sd = sd, .w1 = -1 };
	__u64 before = 0, state = 0;
	__u32 x1 = 0, x2 = 0, tries, choice;

	if (!cursor || sd->count > RVS_MAX_DESTS)
		return 0;
	bpf_loop(RVS_MAX_DESTS, twos_sum, &tw, 0);
	if (!tw.any)
		return 0;
	tw.total += 1;
	for (tries = 0; tries < 4; tries++) {
		before = *cursor;
		state = before;
		x1 = rng_next(&state);
		x2 = rng_next(&state);
		if (__sync_val_compare_and_swap(cursor, before, state) == before)
			break;
	}
	tw.r1 = (__s64)((__u64)x1 % (__u64)tw.total);
	tw.r2 = (__s64)((__u64)x2 % (__u64)tw.total);
	bpf_loop(RVS_MAX_DESTS, twos_choose, &tw, 0);
	choice = tw.have1 ? tw.i1 : tw.last;
	if (tw.have2 && tw.w2 * tw.oh1 > tw.w1 * tw.oh2)
		choice = tw.i2;
	return dest_at(sd, choice, out);
}

static __always_inline int schedule(struct rvs_svc *svc, struct pkt *p, struct pick *out)
{
	struct rvs_svc_dests *sd = bpf_map_lookup_elem(&svc_dests, &svc->id);

	if (!sd)
		return 0;
	switch (svc->sched) {
	case RVS_SCHED_RR:
		return sched_rr(svc, sd, out);
	case RVS_SCHED_WRR:
		return sched_wrr(svc, sd, out);
	case RVS_SCHED_SH:
	case RVS_SCHED_MH:
		return sched_src_hash(svc, sd, p, out);
	case RVS_SCHED_DH:
		return sched_dh(svc, sd, p, out);
	case RVS_SCHED_TWOS:
		return sched_twos(svc, sd, out);
	default:
		return sched_scan(svc->sched, sd, out);
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
