//! The data plane's egress counters: one set per writer (a worker, or the BPF plane's
//! injector), each on cache lines of its own and written by that writer alone, so no packet
//! makes two threads share a written line; readers sum the sets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of what happened after the engine's verdict (the engine counts its own drops), as
/// one writer counted them.
#[derive(Debug, Default)]
pub struct Counts {
    /// Frames sent.
    pub sent: AtomicU64,
    /// Forwarded frames held while the next hop's MAC was being resolved.
    pub neighbour_held: AtomicU64,
    /// Held frames dropped: the queue was full or the neighbour never answered.
    pub neighbour_failed: AtomicU64,
    /// Forwarded frames dropped because no route led to the next hop.
    pub unreachable: AtomicU64,
    /// Forwarded frames whose route leaves through an interface rvsd does not run on.
    pub unmanaged_egress: AtomicU64,
    /// Frames the kernel refused to send.
    pub send_errors: AtomicU64,
    /// Tunnelled packets refused for the path MTU (the client got ICMP frag-needed / too-big).
    pub tunnel_too_big: AtomicU64,
    /// GSO super-frames segmented in software before encapsulation.
    pub tunnel_segmented: AtomicU64,
    /// Tunnelled packets dropped: no source address toward the real server, a GSO type that
    /// cannot be segmented, or an inner packet that could not be encapsulated.
    pub tunnel_errors: AtomicU64,
    /// Packets of `Local` connections handed to the director's own stack (TUN device).
    pub local_delivered: AtomicU64,
    /// Forwarded packets longer than the path MTU that may not be fragmented (IPv4 with DF, IPv6,
    /// GSO frames): dropped, and the sender got ICMP frag-needed / packet-too-big.
    pub too_big: AtomicU64,
    /// Forwarded packets cut into fragments (IPv4 without DF longer than the path MTU, and
    /// reassembled datagrams cut again to their largest fragment).
    pub fragmented: AtomicU64,
    /// Segments the engine deferred (of SYN-proxied connections waiting for their real server).
    pub deferred: AtomicU64,
    /// Deferred segments dropped: kept too long, or too many kept (the client sends them again).
    pub deferred_expired: AtomicU64,
    /// Faults `poll` reported on receive sockets (`POLLERR`, `POLLHUP`, `POLLNVAL`), e.g. the
    /// pending `ENETDOWN` of a link that went down; each was read and cleared.
    pub socket_errors: AtomicU64,
    /// Receive and send sockets re-opened (per worker) on an interface that was re-created.
    pub socket_reopens: AtomicU64,
    /// Reassembled datagrams the engine left to the kernel, which had none of their fragments
    /// (kept from it by the kernel bypass or the BPF program), handed to it through the TUN
    /// device, cut again as they came.
    pub to_kernel: AtomicU64,
}

/// Adds `n` to a counter that only the calling thread writes: a plain load and store, without
/// the locked read-modify-write a `fetch_add` costs.
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl Counts {
    /// Every counter with its operator-facing name (`tx_sent`, `tx_neighbour_held`, ...,
    /// then the receive sockets' `rx_socket_errors` and `rx_socket_reopens`), in a fixed order.
    pub fn snapshot(&self) -> [(&'static str, u64); 17] {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("tx_sent", read(&self.sent)),
            ("tx_neighbour_held", read(&self.neighbour_held)),
            ("tx_neighbour_failed", read(&self.neighbour_failed)),
            ("tx_unreachable", read(&self.unreachable)),
            ("tx_unmanaged_egress", read(&self.unmanaged_egress)),
            ("tx_send_errors", read(&self.send_errors)),
            ("tx_tunnel_too_big", read(&self.tunnel_too_big)),
            ("tx_tunnel_segmented", read(&self.tunnel_segmented)),
            ("tx_tunnel_errors", read(&self.tunnel_errors)),
            ("tx_local_delivered", read(&self.local_delivered)),
            ("tx_too_big", read(&self.too_big)),
            ("tx_fragmented", read(&self.fragmented)),
            ("tx_deferred", read(&self.deferred)),
            ("tx_deferred_expired", read(&self.deferred_expired)),
            ("tx_to_kernel", read(&self.to_kernel)),
            ("rx_socket_errors", read(&self.socket_errors)),
            ("rx_socket_reopens", read(&self.socket_reopens)),
        ]
    }
}

/// One writer's [`Counts`] alone on its cache lines (128 bytes: adjacent-line prefetch pairs
/// lines on x86), so writers never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounts(pub Counts);

impl std::ops::Deref for WorkerCounts {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.0
    }
}

/// Every writer's counters; what readers (`rvsadm --counters`) see is their sum.
#[derive(Debug)]
pub struct EgressCounters {
    writers: Box<[Arc<WorkerCounts>]>,
}

impl EgressCounters {
    /// Counters for `writers` writers (at least one).
    pub fn new(writers: usize) -> EgressCounters {
        EgressCounters {
            writers: (0..writers.max(1)).map(|_| Arc::default()).collect(),
        }
    }

    /// The counters writer `index` writes (the last writer's when out of range).
    pub fn writer(&self, index: usize) -> Arc<WorkerCounts> {
        let last = self.writers.len() - 1;
        self.writers[index.min(last)].clone()
    }

    /// Every counter summed over the writers, named as in [`Counts::snapshot`].
    pub fn snapshot(&self) -> [(&'static str, u64); 17] {
        let mut sum = Counts::default().snapshot();
        for writer in self.writers.iter() {
            for (total, (_, value)) in sum.iter_mut().zip(writer.snapshot()) {
                total.1 = total.1.wrapping_add(value);
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_every_counter() {
        let c = EgressCounters::new(1);
        let w = c.writer(0);
        bump(&w.sent, 5);
        bump(&w.send_errors, 2);
        let snap = c.snapshot();
        assert_eq!(snap[0], ("tx_sent", 5));
        assert_eq!(snap[5], ("tx_send_errors", 2));
        assert_eq!(snap[8], ("tx_tunnel_errors", 0));
        assert_eq!(snap[14], ("tx_to_kernel", 0));
        assert_eq!(snap[15], ("rx_socket_errors", 0));
        assert!(snap
            .iter()
            .all(|(name, _)| name.starts_with("tx_") || name.starts_with("rx_")));
    }

    #[test]
    fn readers_see_the_sum_of_the_writers() {
        let c = EgressCounters::new(3);
        for i in 0..3u64 {
            let w = c.writer(i as usize);
            bump(&w.sent, 10 * (i + 1));
            bump(&w.socket_reopens, 1);
        }
        let snap = c.snapshot();
        assert_eq!(snap[0], ("tx_sent", 60));
        assert_eq!(snap[16], ("rx_socket_reopens", 3));
    }

    #[test]
    fn writers_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerCounts>(), 128);
        let c = EgressCounters::new(2);
        let (a, b) = (c.writer(0), c.writer(1));
        let (a, b) = (Arc::as_ptr(&a) as usize, Arc::as_ptr(&b) as usize);
        assert!(a.abs_diff(b) >= 128);
    }
}
