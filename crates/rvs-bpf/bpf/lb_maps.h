/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The program's maps (rvs_lb.c includes this once; sizes are set by rvsd before loading). */
#ifndef RVS_LB_MAPS_H
#define RVS_LB_MAPS_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rvs_svc_key);
	__type(value, struct rvs_svc);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct rvs_svc_dests);
} svc_dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rvs_addr);
	__type(value, __u32);
} addrs SEC(".maps");

/* NAT real servers of services rvsd schedules (persistence, FULLNAT, ...): their packets that
 * are no connection of the program's are replies of rvsd's connections, so they go to rvsd. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct rvs_svc_key);
	__type(value, __u32);
} user_dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} sched_cursor SEC(".maps");

/* wrr sequences: service id * RVS_WRR_SEQ + step -> the step. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096 * RVS_WRR_SEQ);
	__type(key, __u32);
	__type(value, struct rvs_wrr_step);
} wrr_seq SEC(".maps");

/* sh/dh/mh tables: service id * RVS_HASH_STRIDE + entry -> index into the service's dests. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096 * RVS_HASH_STRIDE);
	__type(key, __u32);
	__type(value, __u32);
} hash_tab SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct rvs_dest);
} dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct rvs_dest_conns);
} dest_conns SEC(".maps");

/* The next hop toward each real server, by slot (sized like `dests`), as IPVS caches one route
 * per destination: a new connection's first packet is sent through it instead of a FIB lookup
 * of its own, and the connection starts with a copy (`rvs_conn.hop`). Valid while its `gen`
 * is the settings' `fib_gen`; rvsd clears a slot's entry when it gives the slot out. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct rvs_hop);
} dest_hops SEC(".maps");

/* The connection table, client side (`conns`) and reply side (`conns_out`), both preallocated:
 * the kernel reserves the whole bound when rvsd creates them (about 210 and 190 bytes an
 * entry), and an insert or a delete takes or gives back an entry of its own per-CPU free
 * lists. Allocated per insert instead (BPF_F_NO_PREALLOC), a new connection cost 0.6 us more
 * in the program (`cargo bench -p rvs-bpf`: the allocator, memory-cgroup charging) and every
 * delete a free after an RCU grace period, in a kernel worker. (Tables pinned by earlier
 * builds, made that way, are adopted as they are: see Datapath::load_pinned.)
 * The price: a deleted entry can be taken at once by another CPU's insert, so a packet still
 * holding it could write into the connection that took it: its counters, state and cached
 * next hop, and the server counts its state moves. Deletes are of expired connections (idle),
 * by the connection's own packets (conn_reuse_mode, expire_nodest_conn after its server went)
 * and by drop_entry's visits under memory pressure (half-open or long-idle connections), so
 * that window is rarely open. forget_conn copies what it needs before it deletes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct rvs_conn_key);
	__type(value, struct rvs_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct rvs_conn_key);
	__type(value, struct rvs_conn_out);
} conns_out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_settings);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_STATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct rvs_traffic);
} svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct rvs_traffic);
} dest_stats SEC(".maps");

/* Packets seen coming from a service's own address and port, by service id (per CPU): a
 * direct-routing or tunnel real server replying through the director, for `rvsadm --doctor`
 * (the engine's `stray_replies`). The program passes them on to the kernel. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} svc_stray SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} punt SEC(".maps");

/* Persistence templates (sized like `conns` by the loader). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rvs_tpl_key);
	__type(value, struct rvs_tpl);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} templates SEC(".maps");

/* The lblc/lblcr tables of every service (lb_locality.h); rvsd ages them as IPVS does. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rvs_loc_key);
	__type(value, struct rvs_loc);
} locality SEC(".maps");

/* The earliest expiry a packet or an install set since rvsd last cleared it (0: none), per CPU:
 * with the last sweep's answer, it tells rvsd when its next expiry sweep is due (rvsd's
 * dataplane/bpf/expiry.rs). Written only when an expiry is set sooner than it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} expiry_floor SEC(".maps");

/* Notes an expiry just set in a connection or template for rvsd's sweep schedule. */
static __always_inline void note_expiry(__u64 expires)
{
	__u32 zero = 0;
	__u64 *floor = bpf_map_lookup_elem(&expiry_floor, &zero);

	if (floor && (*floor == 0 || expires < *floor))
		*floor = expires;
}

/* IPVS's drop_packet: new connections left before the next one is dropped (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} defense_left SEC(".maps");

/* A new lblc/lblcr entry while it is built (per CPU: it is larger than the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_loc);
} loc_scratch SEC(".maps");

/* Connections for the sync master (rvsd drains it every 100 ms; 64 Ki records). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} sync_ring SEC(".maps");

/* The header of a punted frame in the `punt` ring buffer; the frame's bytes follow. */
struct punt_hdr {
	__u32 ifindex;
	__u32 len;      /* bytes that follow */
	__u32 wire;     /* the frame's length on the wire */
	__u16 reason;   /* enum rvs_punt */
	__u16 gso_size; /* a GSO frame's segment payload size; 0: not GSO */
	__u32 dest;     /* RVS_PUNT_TOO_BIG, RVS_PUNT_TUNNEL: the real server's slot to tunnel to */
};

/* Scratch space for a punted frame: one per CPU, in a plain array (a per-CPU array's values
 * are limited to 32 KiB). */
struct punt_buf {
	struct punt_hdr hdr;
	__u8 data[PUNT_MAX];
};

#define PUNT_SCRATCH_CPUS 64

/* Declares a per-CPU map `name` holding one `vtype` (a packet's working space where the hooks'
 * 512-byte stack is too small) and `name##_get()`, which returns this CPU's value cleared, or
 * NULL if the map is missing. */
#define PERCPU_SCRATCH(name, vtype)                                      \
	struct {                                                         \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                 \
		__uint(max_entries, 1);                                  \
		__type(key, __u32);                                      \
		__type(value, vtype);                                    \
	} name SEC(".maps");                                             \
	static __always_inline vtype *name##_get(void)                  \
	{                                                                \
		__u32 zero = 0;                                          \
		vtype *v = bpf_map_lookup_elem(&name, &zero);            \
									 \
		if (v)                                                   \
			__builtin_memset(v, 0, sizeof(*v));              \
		return v;                                                \
	}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PUNT_SCRATCH_CPUS);
	__type(key, __u32);
	__type(value, struct punt_buf);
} punt_scratch SEC(".maps");

/* A new connection's entries while they are built (per CPU; see open_conn). */
struct conn_scratch {
	struct rvs_conn conn;
	struct rvs_conn_out out;
	struct rvs_conn_key reply;
	struct rvs_conn_key gone; /* forget_conn's copy of the key it deletes */
	struct rvs_tpl_key tpl_key;
	struct rvs_tpl tpl;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_scratch);
} conn_scratch SEC(".maps");

#endif
