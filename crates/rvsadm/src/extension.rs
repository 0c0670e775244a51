//! rvs's own command lines, beside ipvsadm's (they use option names ipvsadm does not have):
//!
//! * `--add-mark -t|-u ADDR[/PREFIX]:PORT[-PORT] --mark N`: append a classifier rule; packets of
//!   that protocol to that destination network and port range carry mark N and go to the
//!   firewall-mark service `-f N` (`-6` for IPv6 addresses). IPv6 addresses go in brackets:
//!   `[2001:db8::1]/128:80`. The prefix defaults to the whole address (/32, /128).
//! * `--del-mark` with the same arguments: remove that rule.
//! * `--list-marks`: the rules in evaluation order (the first match gives the mark), as
//!   `--add-mark` lines.
//! * `--set-policy NAME=VALUE`: set one of IPVS's policy switches (`conn_reuse_mode`,
//!   `expire_nodest_conn`, `expire_quiescent_template`, `sloppy_tcp`, `schedule_icmp`,
//!   `sloppy_sctp`, and the defence's `drop_entry`, `drop_packet`, `secure_tcp`, `amemthresh`,
//!   `am_droprate`) or rvs's `syn_proxy`.
//! * `--list-policy`: every switch as `NAME VALUE`.
//! * `--reload`: make rvsd re-read its keepalived.conf (as SIGHUP does); a broken file is
//!   refused with its `file:line` errors and a non-zero exit, and nothing changes.
//! * `--health`: every checked real server with its applied weight and state, and each of its
//!   checkers with the last result, how long ago, and the failures in a row.
//! * `--doctor`: the classic LVS misconfigurations rvsd sees signs of (NAT real servers whose
//!   replies never come back, DR real servers replying through the director, tunnels too big
//!   for the path, unreachable real servers), each with what to do; nothing when none.
//! * `--vrrp`: every VRRP instance rvsd runs from its keepalived.conf: name, sync group,
//!   interface, VRID, version, state, effective/configured priority, master, VIPs.
//!
//! `-S` writes the rules as `--add-mark` lines before the services, so `-R` restores them;
//! ipvsadm-restore would not understand those lines.

use crate::action::Action;
use crate::parse::{fail, ParseError};
use rvs_api::{Command, MarkProto, MarkRuleView};
use std::net::IpAddr;

/// The first words that make a command line one of rvs's extensions.
pub(crate) const FIRST_WORDS: [&str; 10] = [
    "--add-mark",
    "--del-mark",
    "--list-marks",
    "--set-policy",
    "--list-policy",
    "--reload",
    "--health",
    "--vrrp",
    "--bfd",
    "--doctor",
];

/// `Some` when `args` is one of the extension command lines (parsed or refused).
pub fn parse_extension<S: AsRef<str>>(args: &[S]) -> Option<Result<Action, ParseError>> {
    let first = args.first()?.as_ref();
    let (name, inline) = match first.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (first, None),
    };
    if !FIRST_WORDS.contains(&name) {
        return None;
    }
    let rest: Vec<&str> = args[1..].iter().map(AsRef::as_ref).collect();
    Some(match name {
        "--add-mark" => mark_rule(&rest).map(|r| Action::Apply(Command::AddMarkRule(r))),
        "--del-mark" => mark_rule(&rest).map(|r| Action::Apply(Command::DelMarkRule(r))),
        "--list-marks" => no_more(&rest).map(|()| Action::ListMarks),
        "--list-policy" => no_more(&rest).map(|()| Action::ListPolicy),
        "--reload" => no_more(&rest).map(|()| Action::Apply(Command::Reload)),
        "--health" => no_more(&rest).map(|()| Action::Health),
        "--vrrp" => no_more(&rest).map(|()| Action::Vrrp),
        "--bfd" => no_more(&rest).map(|()| Action::Bfd),
        "--doctor" => no_more(&rest).map(|()| Action::Doctor),
        _ => set_policy(inline, &rest),
    })
}

fn no_more(rest: &[&str]) -> Result<(), ParseError> {
    match rest.first() {
        Some(extra) => fail(format!("unexpected argument {extra}")),
        None => Ok(()),
    }
}

fn set_policy(inline: Option<&str>, rest: &[&str]) -> Result<Action, ParseError> {
    let (text, rest) = match inline {
        Some(v) => (v, rest),
        None => match rest.split_first() {
            Some((v, r)) => (*v, r),
            None => return fail("--set-policy needs NAME=VALUE"),
        },
    };
    no_more(rest)?;
    let Some((name, value)) = text.split_once('=') else {
        return fail(format!("invalid policy setting `{text}' (NAME=VALUE)"));
    };
    let Ok(value) = value.trim().parse::<u32>() else {
        return fail(format!("invalid policy value `{value}'"));
    };
    Ok(Action::Apply(Command::SetPolicy {
        name: name.trim().to_owned(),
        value,
    }))
}

fn mark_rule(rest: &[&str]) -> Result<MarkRuleView, ParseError> {
    let mut target: Option<(MarkProto, &str)> = None;
    let mut mark: Option<u32> = None;
    let mut words = rest.iter();
    while let Some(&word) = words.next() {
        let (opt, inline) = match word.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o, Some(v)),
            _ => (word, None),
        };
        let mut value = || -> Result<&str, ParseError> {
            match inline {
                Some(v) => Ok(v),
                None => match words.next() {
                    Some(v) => Ok(v),
                    None => fail(format!("{opt}: missing argument")),
                },
            }
        };
        match opt {
            "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" => {
                if target.is_some() {
                    return fail("multiple '-t/-u' options specified");
                }
                let proto = match opt {
                    "-t" | "--tcp-service" => MarkProto::Tcp,
                    "-u" | "--udp-service" => MarkProto::Udp,
                    _ => MarkProto::Sctp,
                };
                target = Some((proto, value()?));
            }
            "--mark" => {
                if mark.is_some() {
                    return fail("multiple '--mark' options specified");
                }
                let v = value()?;
                match v.parse::<u32>() {
                    Ok(m) if m != 0 => mark = Some(m),
                    _ => return fail(format!("invalid fwmark value `{v}' specified")),
                }
            }
            other => return fail(format!("unexpected argument {other}")),
        }
    }
    let Some((proto, text)) = target else {
        return fail("a mark rule needs -t, -u or --sctp-service ADDR[/PREFIX]:PORT[-PORT]");
    };
    let Some(mark) = mark else {
        return fail("a mark rule needs --mark N");
    };
    let (addr, prefix_len, first_port, last_port) = parse_target(text)
        .ok_or_else(|| ParseError::Fail(format!("illegal mark destination `{text}' specified")))?;
    Ok(MarkRuleView {
        proto,
        addr,
        prefix_len,
        first_port,
        last_port,
        mark,
    })
}

/// `ADDR[/PREFIX]:PORT[-PORT]`, IPv6 addresses in brackets.
fn parse_target(text: &str) -> Option<(IpAddr, u8, u16, u16)> {
    let (net, ports) = if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let (prefix, ports) = match after.strip_prefix('/') {
            Some(p) => p.split_once(':')?,
            None => ("", after.strip_prefix(':')?),
        };
        let addr: IpAddr = addr.parse().ok().filter(IpAddr::is_ipv6)?;
        ((addr, prefix), ports)
    } else {
        let (net, ports) = text.rsplit_once(':')?;
        let (addr, prefix) = net.split_once('/').unwrap_or((net, ""));
        let addr: IpAddr = addr.parse().ok().filter(IpAddr::is_ipv4)?;
        ((addr, prefix), ports)
    };
    let (addr, prefix) = net;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = if prefix.is_empty() {
        max
    } else {
        prefix.parse::<u8>().ok().filter(|p| *p <= max)?
    };
    let (first, last) = ports.split_once('-').unwrap_or((ports, ports));
    let first = first.parse::<u16>().ok().filter(|p| *p != 0)?;
    let last = last.parse::<u16>().ok().filter(|p| *p >= first)?;
    Some((addr, prefix_len, first, last))
}

/// One rule as the `--add-mark` line that creates it (`--list-marks` and `-S`).
pub fn mark_rule_line(r: &MarkRuleView) -> String {
    let proto = match r.proto {
        MarkProto::Tcp => "-t",
        MarkProto::Udp => "-u",
        MarkProto::Sctp => "--sctp-service",
    };
    let addr = match r.addr {
        IpAddr::V4(a) => format!("{a}/{}", r.prefix_len),
        IpAddr::V6(a) => format!("[{a}]/{}", r.prefix_len),
    };
    let ports = if r.first_port == r.last_port {
        r.first_port.to_string()
    } else {
        format!("{}-{}", r.first_port, r.last_port)
    };
    format!("--add-mark {proto} {addr}:{ports} --mark {}\n", r.mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(args: &[&str]) -> MarkRuleView {
        match parse_extension(args) {
            Some(Ok(Action::Apply(Command::AddMarkRule(r)))) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mark_rules_parse_and_print_back() {
        let r = rule(&["--add-mark", "-t", "192.168.1.253:80", "--mark", "1"]);
        assert_eq!(r.prefix_len, 32);
        assert_eq!((r.first_port, r.last_port), (80, 80));
        assert_eq!(
            mark_rule_line(&r),
            "--add-mark -t 192.168.1.253/32:80 --mark 1\n"
        );
        let r = rule(&["--add-mark", "-u", "[2001:db8::]/64:5000-5010", "--mark=7"]);
        assert_eq!(r.proto, MarkProto::Udp);
        assert_eq!(
            (r.prefix_len, r.first_port, r.last_port, r.mark),
            (64, 5000, 5010, 7)
        );
        assert_eq!(
            mark_rule_line(&r),
            "--add-mark -u [2001:db8::]/64:5000-5010 --mark 7\n"
        );
        let words: Vec<String> = mark_rule_line(&r)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            rule(&words.iter().map(String::as_str).collect::<Vec<_>>()),
            r
        );
        for bad in [
            &["--add-mark", "-t", "10.0.0.1:80"][..],
            &["--add-mark", "-t", "10.0.0.1/33:80", "--mark", "1"],
            &["--add-mark", "-t", "10.0.0.1:90-80", "--mark", "1"],
            &["--add-mark", "-t", "10.0.0.1", "--mark", "1"],
            &["--add-mark", "-t", "10.0.0.1:80", "--mark", "0"],
            &["--add-mark", "-t", "fd00::1:80", "--mark", "1"],
        ] {
            assert!(matches!(parse_extension(bad), Some(Err(_))), "{bad:?}");
        }
        assert!(parse_extension(&["-A", "-t", "10.0.0.1:80"]).is_none());
        let r = rule(&[
            "--add-mark",
            "--sctp-service",
            "10.0.0.0/24:36412",
            "--mark",
            "3",
        ]);
        assert_eq!((r.proto, r.prefix_len, r.mark), (MarkProto::Sctp, 24, 3));
        assert_eq!(
            mark_rule_line(&r),
            "--add-mark --sctp-service 10.0.0.0/24:36412 --mark 3\n"
        );
    }

    #[test]
    fn policy_and_listing_commands() {
        assert_eq!(
            parse_extension(&["--set-policy", "sloppy_tcp=1"]).unwrap(),
            Ok(Action::Apply(Command::SetPolicy {
                name: "sloppy_tcp".into(),
                value: 1
            }))
        );
        assert_eq!(
            parse_extension(&["--set-policy=conn_reuse_mode=0"]).unwrap(),
            Ok(Action::Apply(Command::SetPolicy {
                name: "conn_reuse_mode".into(),
                value: 0
            }))
        );
        assert!(parse_extension(&["--set-policy", "x"]).unwrap().is_err());
        assert_eq!(
            parse_extension(&["--list-marks"]).unwrap(),
            Ok(Action::ListMarks)
        );
        assert_eq!(
            parse_extension(&["--list-policy"]).unwrap(),
            Ok(Action::ListPolicy)
        );
    }
}
