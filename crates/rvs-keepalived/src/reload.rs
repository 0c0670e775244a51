//! The differences between the table and the wanted pool of one service, as control commands:
//! nothing for a real server that is already right (its connections and counters stay), an edit
//! for a changed weight or threshold, an add for a missing one, and a delete for a server that
//! must go. A server drained by a reload is set to weight 0 and deleted once it has no
//! connections left.

use std::net::SocketAddr;

use rvs_api::{Command, DestConfig, DestView, ServiceId};

/// What to do with the real servers of `service`.
///
/// `current` is the table's view, `wanted` the pool policy's result, `managed` every server the
/// configuration knows for this service (others, added by hand with rvsadm, are left alone), and
/// `draining` the servers a reload removed. Returns the commands and the drained servers that
/// are gone (deleted now or already absent).
pub fn dest_commands(
    service: ServiceId,
    current: &[DestView],
    wanted: &[DestConfig],
    managed: &[SocketAddr],
    draining: &[SocketAddr],
) -> (Vec<Command>, Vec<SocketAddr>) {
    let mut commands = Vec::new();
    let mut drained = Vec::new();
    for want in wanted {
        let addr = want.socket_addr();
        match current.iter().find(|c| c.config.socket_addr() == addr) {
            None => commands.push(Command::AddDest {
                service,
                dest: want.clone(),
            }),
            Some(have) => {
                let c = &have.config;
                if c.weight != want.weight
                    || c.u_threshold != want.u_threshold
                    || c.l_threshold != want.l_threshold
                {
                    commands.push(Command::EditDest {
                        service,
                        dest: DestConfig {
                            method: c.method,
                            tunnel: c.tunnel,
                            ..want.clone()
                        },
                    });
                }
            }
        }
    }
    for have in current {
        let addr = have.config.socket_addr();
        if wanted.iter().any(|w| w.socket_addr() == addr) {
            continue;
        }
        if draining.contains(&addr) {
            if have.active_conns == 0 && have.inactive_conns == 0 {
                commands.push(del(service, addr));
                drained.push(addr);
            } else if have.config.weight != 0 {
                commands.push(Command::EditDest {
                    service,
                    dest: DestConfig {
                        weight: 0,
                        ..have.config.clone()
                    },
                });
            }
        } else if managed.contains(&addr) {
            commands.push(del(service, addr));
        }
    }
    for addr in draining {
        if !current.iter().any(|c| c.config.socket_addr() == *addr) {
            drained.push(*addr);
        }
    }
    (commands, drained)
}

fn del(service: ServiceId, addr: SocketAddr) -> Command {
    Command::DelDest {
        service,
        addr: addr.ip(),
        port: addr.port(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{RatesView, StatsView};

    fn dest(last: u8, weight: u32) -> DestConfig {
        let addr = std::net::IpAddr::from([10, 0, 0, last]);
        DestConfig::new(addr, 80, weight, rvs_api::ForwardMethod::Masq)
    }

    fn view(last: u8, weight: u32, active: u32) -> DestView {
        DestView {
            config: dest(last, weight),
            active_conns: active,
            inactive_conns: 0,
            persist_conns: 0,
            stats: StatsView::default(),
            rates: RatesView::default(),
        }
    }

    const SVC: ServiceId = ServiceId::Tcp {
        addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 253)),
        port: 80,
    };

    #[test]
    fn unchanged_servers_get_no_command_and_weights_are_edited() {
        let current = [view(2, 1, 5), view(3, 1, 5)];
        let wanted = [dest(2, 1), dest(3, 4)];
        let managed = [dest(2, 1).socket_addr(), dest(3, 1).socket_addr()];
        let (cmds, drained) = dest_commands(SVC, &current, &wanted, &managed, &[]);
        assert_eq!(
            cmds,
            vec![Command::EditDest {
                service: SVC,
                dest: dest(3, 4)
            }]
        );
        assert!(drained.is_empty());
    }

    #[test]
    fn drained_servers_go_to_weight_zero_then_away() {
        let a = dest(3, 1).socket_addr();
        let (cmds, drained) = dest_commands(SVC, &[view(3, 1, 2)], &[], &[], &[a]);
        assert_eq!(
            cmds,
            vec![Command::EditDest {
                service: SVC,
                dest: dest(3, 0)
            }]
        );
        assert!(drained.is_empty());
        let (cmds, drained) = dest_commands(SVC, &[view(3, 0, 0)], &[], &[], &[a]);
        assert_eq!(cmds, vec![del(SVC, a)]);
        assert_eq!(drained, vec![a]);
    }

    #[test]
    fn unmanaged_servers_are_left_alone_and_missing_ones_added() {
        let (cmds, _) = dest_commands(SVC, &[view(7, 1, 0)], &[dest(2, 1)], &[], &[]);
        assert_eq!(
            cmds,
            vec![Command::AddDest {
                service: SVC,
                dest: dest(2, 1)
            }]
        );
    }
}
