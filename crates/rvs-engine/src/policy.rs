//! IPVS's run-time switches that change outcomes (`/proc/sys/net/ipv4/vs/*`), with the
//! kernel's defaults.

/// The policy switches. Names follow the kernel's sysctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `conn_reuse_mode`: bit 0 (1) reschedules a new TCP connection (SYN) that finds an old
    /// one in TIME_WAIT or CLOSE; bit 1 (2) also one in FIN_WAIT of a direct-routing or tunnel
    /// connection; 0 keeps such a SYN on the old connection. Connections controlled by a
    /// persistence template are never rescheduled. Kernel default 1.
    pub conn_reuse_mode: u8,
    /// `expire_nodest_conn`: a packet of a connection whose real server was removed expires
    /// the connection at once (1) instead of only being dropped (0). Default 0.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template`: a persistence template whose real server has weight 0 is
    /// expired when next used, so the client is scheduled afresh. Default 0.
    pub expire_quiescent_template: bool,
    /// `sloppy_tcp`: a TCP packet other than a SYN that has no connection creates one
    /// (takeover after a director failover). Default 0.
    pub sloppy_tcp: bool,
    /// `schedule_icmp`: ICMP errors about a service that have no connection are scheduled
    /// like the packet they quote (instead of left to the kernel). Default 0.
    pub schedule_icmp: bool,
    /// `sloppy_sctp`: an SCTP packet whose first chunk is not an INIT (nor an ABORT) and that
    /// has no connection creates one. Default 0.
    pub sloppy_sctp: bool,
    /// `syn_proxy` (an rvs extension, not IPVS's): the director answers new TCP connections to
    /// services whose real servers are all NAT or FULLNAT with SYN cookies, and opens the
    /// connection to the real server only once the client's ACK proves the cookie
    /// (`crate::synproxy`). Default 0.
    pub syn_proxy: bool,
    /// `drop_entry`: remove connections from the table when memory is short
    /// (`crate::defense`): 0 never, 1 automatic (reads 2 while on), 3 always. Default 0.
    pub drop_entry: u8,
    /// `drop_packet`: drop new connections at a rate when memory is short: 0 never, 1
    /// automatic (reads 2 while on), 3 always at `am_droprate`. Default 0.
    pub drop_packet: u8,
    /// `secure_tcp`: the stricter TCP state table when memory is short: 0 never, 1 automatic
    /// (reads 2 while on), 3 always. Default 0.
    pub secure_tcp: u8,
    /// `amemthresh`: the memory left, in 4 KiB pages, under which the automatic switches turn
    /// on. Default 1024.
    pub amemthresh: u32,
    /// `am_droprate`: `drop_packet` 3 drops one new connection in this many. Default 10.
    pub am_droprate: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            conn_reuse_mode: 1,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            sloppy_tcp: false,
            schedule_icmp: false,
            sloppy_sctp: false,
            syn_proxy: false,
            drop_entry: 0,
            drop_packet: 0,
            secure_tcp: 0,
            amemthresh: 1024,
            am_droprate: 10,
        }
    }
}

/// The names [`Policy::set`] accepts, in listing order.
pub const POLICY_NAMES: [&str; 12] = [
    "conn_reuse_mode",
    "expire_nodest_conn",
    "expire_quiescent_template",
    "sloppy_tcp",
    "schedule_icmp",
    "sloppy_sctp",
    "syn_proxy",
    "drop_entry",
    "drop_packet",
    "secure_tcp",
    "amemthresh",
    "am_droprate",
];

/// Why a policy switch could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not one of [`POLICY_NAMES`].
    #[error("unknown policy `{0}' (known: conn_reuse_mode, expire_nodest_conn, expire_quiescent_template, sloppy_tcp, schedule_icmp, sloppy_sctp, syn_proxy, drop_entry, drop_packet, secure_tcp, amemthresh, am_droprate)")]
    UnknownName(String),
    /// Out of the switch's range.
    #[error("invalid value {value} for {name} (allowed: {allowed})")]
    BadValue {
        /// The switch.
        name: &'static str,
        /// The value given.
        value: u32,
        /// The allowed range, in words.
        allowed: &'static str,
    },
}

impl Policy {
    /// Sets one switch by its sysctl name.
    pub fn set(&mut self, name: &str, value: u32) -> Result<(), PolicyError> {
        let flag = |name: &'static str| -> Result<bool, PolicyError> {
            match value {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(PolicyError::BadValue {
                    name,
                    value,
                    allowed: "0 or 1",
                }),
            }
        };
        let mode = |name: &'static str| -> Result<u8, PolicyError> {
            u8::try_from(value)
                .ok()
                .filter(|v| *v <= 3)
                .ok_or(PolicyError::BadValue {
                    name,
                    value,
                    allowed: "0 to 3",
                })
        };
        match name {
            "conn_reuse_mode" => self.conn_reuse_mode = mode("conn_reuse_mode")?,
            "drop_entry" => self.drop_entry = mode("drop_entry")?,
            "drop_packet" => self.drop_packet = mode("drop_packet")?,
            "secure_tcp" => self.secure_tcp = mode("secure_tcp")?,
            "amemthresh" => self.amemthresh = value,
            "am_droprate" => self.am_droprate = value,
            "expire_nodest_conn" => self.expire_nodest_conn = flag("expire_nodest_conn")?,
            "expire_quiescent_template" => {
                self.expire_quiescent_template = flag("expire_quiescent_template")?
            }
            "sloppy_tcp" => self.sloppy_tcp = flag("sloppy_tcp")?,
            "schedule_icmp" => self.schedule_icmp = flag("schedule_icmp")?,
            "sloppy_sctp" => self.sloppy_sctp = flag("sloppy_sctp")?,
            "syn_proxy" => self.syn_proxy = flag("syn_proxy")?,
            other => return Err(PolicyError::UnknownName(other.to_string())),
        }
        Ok(())
    }

    /// Every switch with its value, in [`POLICY_NAMES`] order.
    pub fn values(&self) -> [(&'static str, u32); 12] {
        [
            ("conn_reuse_mode", u32::from(self.conn_reuse_mode)),
            ("expire_nodest_conn", u32::from(self.expire_nodest_conn)),
            (
                "expire_quiescent_template",
                u32::from(self.expire_quiescent_template),
            ),
            ("sloppy_tcp", u32::from(self.sloppy_tcp)),
            ("schedule_icmp", u32::from(self.schedule_icmp)),
            ("sloppy_sctp", u32::from(self.sloppy_sctp)),
            ("syn_proxy", u32::from(self.syn_proxy)),
            ("drop_entry", u32::from(self.drop_entry)),
            ("drop_packet", u32::from(self.drop_packet)),
            ("secure_tcp", u32::from(self.secure_tcp)),
            ("amemthresh", self.amemthresh),
            ("am_droprate", self.am_droprate),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_kernels_and_names_round_trip() {
        let mut p = Policy::default();
        assert_eq!(p.values()[0], ("conn_reuse_mode", 1));
        assert!(p.values()[1..10].iter().all(|(_, v)| *v == 0));
        assert_eq!(
            p.values()[10..],
            [("amemthresh", 1024), ("am_droprate", 10)]
        );
        for (name, (listed, _)) in POLICY_NAMES.iter().zip(p.values()) {
            assert_eq!(*name, listed);
        }
        for name in POLICY_NAMES {
            p.set(name, 1).unwrap();
        }
        assert!(p.values().iter().all(|(_, v)| *v == 1));
        assert!(p.set("conn_reuse_mode", 4).is_err());
        assert!(p.set("sloppy_tcp", 2).is_err());
        assert!(p.set("drop_entry", 4).is_err());
        p.set("secure_tcp", 3).unwrap();
        assert_eq!(p.secure_tcp, 3);
        assert!(matches!(
            p.set("bogus", 1),
            Err(PolicyError::UnknownName(_))
        ));
    }
}
