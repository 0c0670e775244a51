//! keepalived's pool policy for one virtual service, sans-I/O: which real servers belong in the
//! table with which weight, given their health, `inhibit_on_failure`, quorum/hysteresis and the
//! sorry server.
//!
//! - A live server is in the table with its effective weight (the configured one, or the last
//!   weight a MISC_CHECK `misc_dynamic` / FILE_CHECK asked for).
//! - A failed server is removed, or kept with weight 0 under `inhibit_on_failure`.
//! - Quorum: with the sum of live weights `s`, quorum is lost when it was up and `s == 0` or
//!   `s < quorum - hysteresis`, and gained when it was down and `s >= quorum + hysteresis`
//!   (keepalived's `update_quorum_state`).
//! - While quorum is lost and a sorry server is configured, the sorry server is the only server
//!   with weight (live servers are removed, or weight 0 under `inhibit_on_failure`); otherwise
//!   the sorry server is absent, or at weight 0 with `sorry_server_inhibit`.

use rvs_api::DestConfig;

/// One real server's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its configured settings.
    pub dest: DestConfig,
    /// Whether every checker passes.
    pub alive: bool,
    /// The weight it should have while alive.
    pub weight: u32,
    /// `inhibit_on_failure`.
    pub inhibit: bool,
}

/// The sorry server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sorry {
    /// Its settings (weight 1).
    pub dest: DestConfig,
    /// `sorry_server_inhibit`.
    pub inhibit: bool,
}

/// The sum of the live members' weights.
pub fn live_weight(members: &[Member]) -> u64 {
    members
        .iter()
        .filter(|m| m.alive)
        .map(|m| u64::from(m.weight))
        .sum()
}

/// The quorum state at start: up when the live weight reaches quorum + hysteresis.
pub fn initial_quorum(live: u64, quorum: u32, hysteresis: u32) -> bool {
    live >= u64::from(quorum) + u64::from(hysteresis)
}

/// The quorum state after a change of the live weight.
pub fn next_quorum(up: bool, live: u64, quorum: u32, hysteresis: u32) -> bool {
    let (q, h) = (i64::from(quorum), i64::from(hysteresis));
    let live = i64::try_from(live).unwrap_or(i64::MAX);
    if up {
        !(live == 0 || live < q - h)
    } else {
        live >= q + h
    }
}

/// The real servers that belong in the table, with their weights.
pub fn desired(members: &[Member], sorry: Option<&Sorry>, quorum_up: bool) -> Vec<DestConfig> {
    let sorry_active = !quorum_up && sorry.is_some();
    let mut out = Vec::new();
    for m in members {
        let weight = if m.alive && !sorry_active {
            Some(m.weight)
        } else if m.inhibit {
            Some(0)
        } else {
            None
        };
        if let Some(weight) = weight {
            out.push(DestConfig {
                weight,
                ..m.dest.clone()
            });
        }
    }
    if let Some(s) = sorry {
        let addr = s.dest.socket_addr();
        if !out.iter().any(|d| d.socket_addr() == addr) {
            if sorry_active {
                out.push(s.dest.clone());
            } else if s.inhibit {
                out.push(DestConfig {
                    weight: 0,
                    ..s.dest.clone()
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(last: u8, weight: u32) -> DestConfig {
        let addr = std::net::IpAddr::from([10, 0, 0, last]);
        DestConfig::new(addr, 80, weight, rvs_api::ForwardMethod::Masq)
    }

    fn member(last: u8, weight: u32, alive: bool, inhibit: bool) -> Member {
        Member {
            dest: dest(last, weight),
            alive,
            weight,
            inhibit,
        }
    }

    fn weights(d: &[DestConfig]) -> Vec<(u8, u32)> {
        d.iter()
            .map(|d| match d.addr {
                std::net::IpAddr::V4(a) => (a.octets()[3], d.weight),
                std::net::IpAddr::V6(_) => (0, d.weight),
            })
            .collect()
    }

    #[test]
    fn failed_servers_are_removed_or_inhibited() {
        let m = [member(2, 3, true, false), member(3, 1, false, false)];
        assert_eq!(weights(&desired(&m, None, true)), vec![(2, 3)]);
        let m = [member(2, 3, true, false), member(3, 1, false, true)];
        assert_eq!(weights(&desired(&m, None, true)), vec![(2, 3), (3, 0)]);
    }

    #[test]
    fn sorry_server_replaces_the_pool_without_quorum() {
        let sorry = Sorry {
            dest: dest(9, 1),
            inhibit: false,
        };
        let m = [member(2, 1, false, false), member(3, 1, false, true)];
        assert_eq!(
            weights(&desired(&m, Some(&sorry), false)),
            vec![(3, 0), (9, 1)]
        );
        let m = [member(2, 1, true, false)];
        assert_eq!(weights(&desired(&m, Some(&sorry), true)), vec![(2, 1)]);
        let inhibited = Sorry {
            inhibit: true,
            ..sorry
        };
        assert_eq!(
            weights(&desired(&m, Some(&inhibited), true)),
            vec![(2, 1), (9, 0)]
        );
    }

    #[test]
    fn quorum_with_hysteresis() {
        assert!(initial_quorum(1, 1, 0));
        assert!(!initial_quorum(0, 1, 0));
        assert!(!initial_quorum(3, 3, 1));
        // Up: lost below quorum - hysteresis, or at zero.
        assert!(next_quorum(true, 2, 3, 1));
        assert!(!next_quorum(true, 1, 3, 1));
        assert!(!next_quorum(true, 0, 0, 0));
        // Down: gained at quorum + hysteresis.
        assert!(!next_quorum(false, 3, 3, 1));
        assert!(next_quorum(false, 4, 3, 1));
    }
}
