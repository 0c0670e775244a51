//! Blocks outside LVS and VRRP, checked as keepalived 2.2.7 checks them so that `rvsd -t` fails
//! where `keepalived -t` does: `bfd_instance` (bfd_parser.c; kept, rvsd runs its sessions),
//! `static_routes` (vrrp_iproute.c) and `static_rules` (vrrp_iprule.c), which are not kept.

use crate::tree::Statement;
use crate::values::{parse_secs, Ctx};
use crate::vrrp::BfdInstance;
use std::collections::HashSet;
use std::net::IpAddr;

/// `ADDR` or `ADDR/LEN` with a prefix length valid for the family.
fn prefix(raw: &str) -> Option<IpAddr> {
    let (a, len) = match raw.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (raw, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match len {
        None => Some(addr),
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).map(|_| addr),
    }
}

/// Reads a `bfd_instance NAME { }` block: keywords and values checked as keepalived checks
/// them (an invalid value is ignored, keeping the default), and the neighbour address keepalived
/// requires (without it, or with a source of the other family or a repeated neighbour, the
/// instance is dropped: `None`).
pub fn check_bfd_instance(
    ctx: &mut Ctx<'_>,
    st: &Statement,
    seen: &mut HashSet<String>,
) -> Option<BfdInstance> {
    let name = ctx.arg(st, 0, "an instance name").map(str::to_string)?;
    let body = ctx.block(st)?;
    let mut neighbor: Option<IpAddr> = None;
    let mut source: Option<IpAddr> = None;
    let mut bfd = BfdInstance::new(&name, IpAddr::from([0, 0, 0, 0]), st.span.clone());
    for item in body {
        let what = match item.keyword.as_str() {
            "neighbor_ip" | "neighbour_ip" => {
                neighbor = ctx.ip(item, 0);
                continue;
            }
            "source_ip" => {
                source = ctx.ip(item, 0);
                continue;
            }
            // Milliseconds with up to 3 decimals: 1 ms (idle_tx 1000 ms) up to UINT32_MAX / 1000.
            "min_rx" | "min_tx" | "idle_tx" => {
                let min = if item.keyword == "idle_tx" {
                    1000.0
                } else {
                    1.0
                };
                // The number is milliseconds; parse_secs reads it as seconds.
                let ms = item
                    .args
                    .first()
                    .and_then(|a| parse_secs(a))
                    .map(|d| d.as_secs_f64())
                    .filter(|ms| *ms >= min && *ms <= f64::from(u32::MAX / 1000));
                if let Some(ms) = ms {
                    let value = std::time::Duration::from_micros((ms * 1000.0).round() as u64);
                    match item.keyword.as_str() {
                        "min_rx" => bfd.min_rx = value,
                        "min_tx" => bfd.min_tx = value,
                        _ => bfd.idle_tx = value,
                    }
                } else {
                    ctx.error(
                        &item.span,
                        format!(
                            "bfd_instance {name}: {} value is not valid (must be in range [{min}-{}]) - ignoring",
                            item.keyword,
                            u32::MAX / 1000
                        ),
                    );
                }
                continue;
            }
            "multiplier" => (1, 255),
            "ttl" | "hoplimit" => (1, 255),
            "max_hops" => (0, 255),
            "weight" => {
                if let Some(w) = ctx.int_as::<i32>(item, 0, -253, 253) {
                    bfd.weight = w;
                }
                continue;
            }
            "passive" => {
                bfd.passive = true;
                continue;
            }
            "vrrp" | "checker" => continue,
            _ => {
                ctx.unknown(item, "bfd_instance");
                continue;
            }
        };
        if let Some(v) = ctx.u32(item, 0, what.0, what.1) {
            let v = u8::try_from(v).unwrap_or(u8::MAX);
            match item.keyword.as_str() {
                "multiplier" => bfd.multiplier = v,
                "max_hops" => bfd.max_hops = v,
                _ => bfd.ttl = v,
            }
        }
    }
    match (neighbor, source) {
        (None, _) => {
            ctx.error(
                &st.span,
                format!("bfd_instance {name}: no neighbor address set, disabling instance"),
            );
            None
        }
        (Some(n), Some(s)) if n.is_ipv4() != s.is_ipv4() => {
            ctx.error(
                &st.span,
                format!(
                    "bfd_instance {name}: source address {s} and neighbor address {n} are not of the same family, disabling instance"
                ),
            );
            None
        }
        (Some(n), s) => {
            let key = format!("{n}/{}", s.map(|s| s.to_string()).unwrap_or_default());
            if !seen.insert(key) {
                ctx.error(
                    &st.span,
                    format!(
                        "bfd_instance {name}: duplicate neighbor address {n}, ignoring instance"
                    ),
                );
                return None;
            }
            bfd.neighbor = n;
            bfd.source = s;
            Some(bfd)
        }
    }
}

/// Route types that may come before a `static_routes` destination.
const ROUTE_TYPES: &[&str] = &[
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "throw",
    "unreachable",
    "prohibit",
    "blackhole",
    "nat",
    "anycast",
];

/// Route options that take a value (vrrp_iproute.c `parse_route`).
const ROUTE_VALUE_OPTIONS: &[&str] = &[
    "src",
    "from",
    "via",
    "gw",
    "or",
    "dev",
    "oif",
    "table",
    "metric",
    "preference",
    "priority",
    "scope",
    "proto",
    "protocol",
    "realms",
    "mtu",
    "advmss",
    "rtt",
    "rttvar",
    "reordering",
    "window",
    "cwnd",
    "initcwnd",
    "initrwnd",
    "ssthresh",
    "features",
    "quickack",
    "congctl",
    "pref",
    "expires",
    "tos",
    "dsfield",
    "hoplimit",
    "rto_min",
    "track_group",
    "encap",
    "fastopen_no_cookie",
    "vrf",
];

/// Route flags without a value.
const ROUTE_FLAGS: &[&str] = &["onlink", "no_track", "inet", "inet6"];

/// Checks the routes of `static_routes { }` or an instance's `virtual_routes { }`: each line
/// needs a destination (an address or prefix, or `default`) besides its options; `via` needs an
/// address; `gw` and `or` are deprecated; without `dev` keepalived cannot track the route (an
/// error it reports for every such route unless `no_track` is given).
pub fn check_static_routes(ctx: &mut Ctx<'_>, st: &Statement) {
    let Some(body) = ctx.block(st) else {
        return;
    };
    let block = st.keyword.as_str();
    for item in body {
        let words: Vec<&str> = std::iter::once(item.keyword.as_str())
            .chain(item.args.iter().map(String::as_str))
            .collect();
        let mut dst: Option<&str> = None;
        let mut has_dev = false;
        let mut no_track = false;
        let mut bad = false;
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            if w == "nexthop" {
                has_dev |= words[i..].contains(&"dev");
                break;
            }
            if ROUTE_TYPES.contains(&w) || ROUTE_FLAGS.contains(&w) {
                no_track |= w == "no_track";
                i += 1;
                continue;
            }
            if ROUTE_VALUE_OPTIONS.contains(&w) {
                let value = words.get(i + 1).copied().unwrap_or("");
                match w {
                    "gw" | "or" => ctx.error(
                        &item.span,
                        format!(
                            "{block}: \"{w}\" for routes is deprecated, use \"{}\"",
                            if w == "gw" { "via" } else { "nexthop" }
                        ),
                    ),
                    _ => {}
                }
                if matches!(w, "via" | "gw" | "or") {
                    let gw = if matches!(value, "inet" | "inet6") {
                        i += 1;
                        words.get(i + 1).copied().unwrap_or("")
                    } else {
                        value
                    };
                    if gw.parse::<IpAddr>().is_err() {
                        ctx.error(
                            &item.span,
                            format!("{block}: invalid gateway address '{gw}'"),
                        );
                        bad = true;
                    }
                }
                has_dev |= matches!(w, "dev" | "oif");
                i += 2;
                continue;
            }
            if dst.is_none() {
                if w != "default" && prefix(w).is_none() {
                    ctx.error(
                        &item.span,
                        format!("{block}: route must have a destination, got '{w}'"),
                    );
                    bad = true;
                }
                dst = Some(w);
            }
            i += 1;
        }
        let Some(dst) = dst else {
            ctx.error(
                &item.span,
                format!("{block}: route must have a destination"),
            );
            continue;
        };
        if !bad && !has_dev && !no_track {
            ctx.error(
                &item.span,
                format!(
                    "{block}: cannot track route {dst} with no interface specified, not tracking"
                ),
            );
        }
    }
}

/// Checks `static_rules { }` or an instance's `virtual_rules { }`: `from`/`to` need an address, prefix or `all`; a rule without a
/// `preference` (`priority`, `order`) is given one, which keepalived reports.
pub fn check_static_rules(ctx: &mut Ctx<'_>, st: &Statement) {
    let Some(body) = ctx.block(st) else {
        return;
    };
    for item in body {
        let words: Vec<&str> = std::iter::once(item.keyword.as_str())
            .chain(item.args.iter().map(String::as_str))
            .collect();
        let mut has_pref = false;
        let mut bad = false;
        let mut j = 0;
        while j < words.len() {
            match words[j] {
                "from" | "to" => {
                    let v = words.get(j + 1).copied().unwrap_or("");
                    if v != "all" && prefix(v).is_none() {
                        ctx.error(
                            &item.span,
                            format!("{}: invalid {} address '{v}'", st.keyword, words[j]),
                        );
                        bad = true;
                    }
                    j += 1;
                }
                "preference" | "priority" | "order" => {
                    has_pref = true;
                    if words
                        .get(j + 1)
                        .and_then(|v| v.parse::<u32>().ok())
                        .is_none()
                    {
                        ctx.error(
                            &item.span,
                            format!("{}: invalid {} value", st.keyword, words[j]),
                        );
                    }
                    j += 1;
                }
                _ => {}
            }
            j += 1;
        }
        if !has_pref && !bad {
            ctx.error(
                &item.span,
                format!("{}: rule has no preference specified - keepalived sets one, probably not what you want", st.keyword),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix;

    #[test]
    fn prefixes() {
        assert!(prefix("10.0.0.0/8").is_some());
        assert!(prefix("10.0.0.0/33").is_none());
        assert!(prefix("2001:db8::/64").is_some());
        assert!(prefix("bogus").is_none());
    }
}
