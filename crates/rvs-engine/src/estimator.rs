//! IPVS's rate estimator (ip_vs_est.c): every 2 seconds an EWMA with weight 1/4 over the
//! counter deltas, kept in fixed point (rates <<10 for conns/packets, <<5 for bytes).

use crate::view::{Rates, Stats};

/// Estimator state of one service or destination (also for counters kept elsewhere, as the
/// BPF data plane's: fold them in every 2 seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

fn ewma(avg: u64, sample: u64) -> u64 {
    let a = avg as i128;
    let s = sample as i128;
    (a + ((s - a) >> 2)).max(0) as u64
}

impl Estimator {
    /// Folds in the counters observed at the end of a 2-second period.
    pub fn update(&mut self, now: &Stats) {
        let d = |n: u64, l: u64| n.wrapping_sub(l);
        self.cps = ewma(self.cps, d(now.conns, self.last.conns) << 9);
        self.inpps = ewma(self.inpps, d(now.in_pkts, self.last.in_pkts) << 9);
        self.outpps = ewma(self.outpps, d(now.out_pkts, self.last.out_pkts) << 9);
        self.inbps = ewma(self.inbps, d(now.in_bytes, self.last.in_bytes) << 4);
        self.outbps = ewma(self.outbps, d(now.out_bytes, self.last.out_bytes) << 4);
        self.last = *now;
    }

    /// Rates as `ipvsadm --rate` shows them (rounded like `ip_vs_read_estimator`).
    pub fn rates(&self) -> Rates {
        Rates {
            cps: (self.cps + 0x1ff) >> 10,
            in_pps: (self.inpps + 0x1ff) >> 10,
            out_pps: (self.outpps + 0x1ff) >> 10,
            in_bps: (self.inbps + 0xf) >> 5,
            out_bps: (self.outbps + 0xf) >> 5,
        }
    }

    /// Zeroes rates and restarts from the given counters (`ipvsadm -Z`).
    pub fn reset(&mut self, now: &Stats) {
        *self = Estimator {
            last: *now,
            ..Estimator::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_steady_rate() {
        let mut e = Estimator::default();
        let mut s = Stats::default();
        // 100 conns/s, 1000 pkt/s in, 500 out, 1 MB/s in: per 2 s period.
        for _ in 0..60 {
            s.conns += 200;
            s.in_pkts += 2000;
            s.out_pkts += 1000;
            s.in_bytes += 2_000_000;
            e.update(&s);
        }
        let r = e.rates();
        assert_eq!(
            (r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps),
            (100, 1000, 500, 1_000_000, 0)
        );
    }

    #[test]
    fn first_period_is_quarter() {
        let mut e = Estimator::default();
        e.update(&Stats {
            conns: 8,
            ..Stats::default()
        });
        // 8 conns in 2 s = 4/s; after one EWMA step 1/s.
        assert_eq!(e.rates().cps, 1);
        e.reset(&Stats {
            conns: 8,
            ..Stats::default()
        });
        assert_eq!(e.rates(), Rates::default());
    }
}
