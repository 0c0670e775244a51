//! Splitting argv into options the way ipvsadm's popt does.
//!
//! Short options may be clustered (`-Ln`, `-Lnc`); an option with a required value takes the rest
//! of its cluster, less one `=` (`-t1.2.3.4:80`, `-s=rr`), or the next word (`-t 1.2.3.4:80`);
//! long options take `=value` or the next word. `-p`/`--persistent` has an optional value: the
//! rest of its cluster, `=value`, or the next word unless that starts with `-`. An option
//! without a value followed by `=` (`-L=n`, `--list=x`) is refused. Words that are not options
//! are collected as arguments (used by `--set`); `--` ends option processing. This is popt
//! 1.19's behaviour (Debian 12's, which its ipvsadm uses); an error names the whole word, as
//! `poptBadOption` does.
use std::rc::Rc;

/// Every option ipvsadm 1.31 knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opt {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    TcpService,
    UdpService,
    SctpService,
    FwmarkService,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    /// rvs extension: `--counters` (no short letter).
    Counters,
    /// rvs extension: `--fullnat` forwarding method on `-a`/`-e`.
    FullNat,
    /// rvs extension: `--laddr ADDR[,ADDR...]` FULLNAT local address pool on `-A`/`-E`.
    Laddr,
    /// rvs extension: `--proxy-protocol v1|v2` on `-A`/`-E`.
    ProxyProtocol,
}

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    None,
    Required,
    Optional,
}

struct Spec {
    long: &'static str,
    short: Option<char>,
    value: Value,
    opt: Opt,
}

const fn spec(long: &'static str, short: Option<char>, value: Value, opt: Opt) -> Spec {
    Spec {
        long,
        short,
        value,
        opt,
    }
}

/// ipvsadm 1.31's popt option table (long name, short name, value), then rvs's extensions.
const SPECS: &[Spec] = &[
    spec("add-service", Some('A'), Value::None, Opt::AddService),
    spec("edit-service", Some('E'), Value::None, Opt::EditService),
    spec("delete-service", Some('D'), Value::None, Opt::DeleteService),
    spec("clear", Some('C'), Value::None, Opt::Clear),
    spec("list", Some('L'), Value::None, Opt::List),
    spec("list", Some('l'), Value::None, Opt::List),
    spec("zero", Some('Z'), Value::None, Opt::Zero),
    spec("add-server", Some('a'), Value::None, Opt::AddServer),
    spec("edit-server", Some('e'), Value::None, Opt::EditServer),
    spec("delete-server", Some('d'), Value::None, Opt::DeleteServer),
    spec("set", None, Value::None, Opt::Set),
    spec("help", Some('h'), Value::None, Opt::Help),
    spec("version", Some('v'), Value::None, Opt::Version),
    spec("restore", Some('R'), Value::None, Opt::Restore),
    spec("save", Some('S'), Value::None, Opt::Save),
    spec("start-daemon", None, Value::Required, Opt::StartDaemon),
    spec("stop-daemon", None, Value::Required, Opt::StopDaemon),
    spec("tcp-service", Some('t'), Value::Required, Opt::TcpService),
    spec("udp-service", Some('u'), Value::Required, Opt::UdpService),
    spec("sctp-service", None, Value::Required, Opt::SctpService),
    spec(
        "fwmark-service",
        Some('f'),
        Value::Required,
        Opt::FwmarkService,
    ),
    spec("scheduler", Some('s'), Value::Required, Opt::Scheduler),
    spec("persistent", Some('p'), Value::Optional, Opt::Persistent),
    spec("netmask", Some('M'), Value::Required, Opt::Netmask),
    spec("real-server", Some('r'), Value::Required, Opt::RealServer),
    spec("masquerading", Some('m'), Value::None, Opt::Masquerading),
    spec("ipip", Some('i'), Value::None, Opt::Ipip),
    spec("gatewaying", Some('g'), Value::None, Opt::Gatewaying),
    spec("weight", Some('w'), Value::Required, Opt::Weight),
    spec("u-threshold", Some('x'), Value::Required, Opt::UThreshold),
    spec("l-threshold", Some('y'), Value::Required, Opt::LThreshold),
    spec("numeric", Some('n'), Value::None, Opt::Numeric),
    spec("connection", Some('c'), Value::None, Opt::Connection),
    spec(
        "mcast-interface",
        None,
        Value::Required,
        Opt::McastInterface,
    ),
    spec("syncid", None, Value::Required, Opt::SyncId),
    spec("timeout", None, Value::None, Opt::Timeout),
    spec("daemon", None, Value::None, Opt::Daemon),
    spec("stats", None, Value::None, Opt::Stats),
    spec("rate", None, Value::None, Opt::Rate),
    spec("thresholds", None, Value::None, Opt::Thresholds),
    spec("persistent-conn", None, Value::None, Opt::PersistentConn),
    spec("nosort", None, Value::None, Opt::NoSort),
    spec("sort", None, Value::None, Opt::Sort),
    spec("exact", Some('X'), Value::None, Opt::Exact),
    spec("ipv6", Some('6'), Value::None, Opt::Ipv6),
    spec("ops", Some('o'), Value::None, Opt::Ops),
    spec("pe", None, Value::Required, Opt::Pe),
    spec("sched-flags", Some('b'), Value::Required, Opt::SchedFlags),
    spec("mcast-group", None, Value::Required, Opt::McastGroup),
    spec("mcast-port", None, Value::Required, Opt::McastPort),
    spec("mcast-ttl", None, Value::Required, Opt::McastTtl),
    spec("sync-maxlen", None, Value::Required, Opt::SyncMaxlen),
    spec("tun-info", None, Value::None, Opt::TunInfo),
    spec("tun-type", None, Value::Required, Opt::TunType),
    spec("tun-port", None, Value::Required, Opt::TunPort),
    spec("tun-nocsum", None, Value::None, Opt::TunNocsum),
    spec("tun-csum", None, Value::None, Opt::TunCsum),
    spec("tun-remcsum", None, Value::None, Opt::TunRemcsum),
    spec("counters", None, Value::None, Opt::Counters),
    spec("fullnat", None, Value::None, Opt::FullNat),
    spec("laddr", None, Value::Required, Opt::Laddr),
    spec("proxy-protocol", None, Value::Required, Opt::ProxyProtocol),
];

/// One recognised option occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Occurrence {
    /// Which option.
    pub opt: Opt,
    /// Its value, if it has one.
    pub value: Option<String>,
    /// How the user spelled it (`-t`, `--tcp-service`), for error messages.
    pub spelled: String,
    /// The last word read for it (its value's, when that is the next word): what popt's
    /// `poptBadOption` names, so ipvsadm's "invalid option" names it. The options of one
    /// cluster share it, so a long cluster costs one copy of its word, not one per option.
    pub word: Rc<str>,
}

/// Why a word could not be read as an option (popt's error texts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadOption {
    /// The word popt was reading (`-LQ`, `--bogus=5`).
    pub spelled: String,
    /// popt's reason, e.g. `unknown option`.
    pub reason: &'static str,
}

/// Options in command-line order, leftover arguments, and the first error if any (options after
/// an error are not read, as popt stops there).
#[derive(Debug, Default)]
pub(crate) struct Split {
    pub items: Vec<Result<Occurrence, BadOption>>,
    pub args: Vec<String>,
}

/// Every option as (long name, short letter, takes a value), for the generated man page and
/// shell completions.
pub(crate) fn option_names() -> impl Iterator<Item = (&'static str, Option<char>, bool)> {
    SPECS
        .iter()
        .map(|s| (s.long, s.short, !matches!(s.value, Value::None)))
}

fn by_long(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.long == name)
}

fn by_short(c: char) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.short == Some(c))
}

/// Split `args` (without the program name) into options and arguments.
pub(crate) fn split<S: AsRef<str>>(args: &[S]) -> Split {
    let mut out = Split::default();
    let mut i = 0;
    let mut only_args = false;
    while i < args.len() {
        let word = args[i].as_ref();
        i += 1;
        if only_args || word == "-" || !word.starts_with('-') {
            out.args.push(word.to_string());
            continue;
        }
        if word == "--" {
            only_args = true;
            continue;
        }
        let next_is_value = |i: usize| args.get(i).map(|w| w.as_ref().to_string());
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(spec) = by_long(name) else {
                out.items.push(Err(BadOption {
                    spelled: word.to_string(),
                    reason: "unknown option",
                }));
                return out;
            };
            let spelled = format!("--{name}");
            let value = match (spec.value, inline) {
                (Value::None, Some(_)) => {
                    out.items.push(Err(BadOption {
                        spelled: word.to_string(),
                        reason: "option does not take an argument",
                    }));
                    return out;
                }
                (Value::None, None) => None,
                (_, Some(v)) => Some(v),
                (Value::Required, None) => match next_is_value(i) {
                    Some(v) => {
                        i += 1;
                        Some(v)
                    }
                    None => {
                        out.items.push(Err(BadOption {
                            spelled: word.to_string(),
                            reason: "missing argument",
                        }));
                        return out;
                    }
                },
                (Value::Optional, None) => match next_is_value(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v)
                    }
                    _ => None,
                },
            };
            out.items.push(Ok(Occurrence {
                opt: spec.opt,
                value,
                spelled,
                word: Rc::from(args[i - 1].as_ref()),
            }));
            continue;
        }
        // A cluster of short options.
        let cluster = &word[1..];
        let cluster_word: Rc<str> = Rc::from(word);
        let cluster_end = i;
        let mut chars = cluster.char_indices();
        while let Some((at, c)) = chars.next() {
            let spelled = format!("-{c}");
            let Some(spec) = by_short(c) else {
                out.items.push(Err(BadOption {
                    spelled: word.to_string(),
                    reason: "unknown option",
                }));
                return out;
            };
            let rest = &cluster[at + c.len_utf8()..];
            let value = match spec.value {
                Value::None if rest.starts_with('=') => {
                    out.items.push(Err(BadOption {
                        spelled: word.to_string(),
                        reason: "option does not take an argument",
                    }));
                    return out;
                }
                Value::None => None,
                Value::Required | Value::Optional if !rest.is_empty() => {
                    chars = "".char_indices();
                    Some(rest.strip_prefix('=').unwrap_or(rest).to_string())
                }
                Value::Required => match next_is_value(i) {
                    Some(v) => {
                        i += 1;
                        Some(v)
                    }
                    None => {
                        out.items.push(Err(BadOption {
                            spelled: word.to_string(),
                            reason: "missing argument",
                        }));
                        return out;
                    }
                },
                Value::Optional => match next_is_value(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v)
                    }
                    _ => None,
                },
            };
            let word = if i == cluster_end {
                Rc::clone(&cluster_word)
            } else {
                Rc::from(args[i - 1].as_ref())
            };
            out.items.push(Ok(Occurrence {
                opt: spec.opt,
                value,
                spelled,
                word,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str]) -> Vec<(Opt, Option<String>)> {
        split(words)
            .items
            .into_iter()
            .map(|r| r.map(|o| (o.opt, o.value)).expect("option"))
            .collect()
    }

    /// Found by the `rvsadm_args` fuzz target: a 27 KB cluster took seconds, since every
    /// option in it copied the rest of the cluster and the whole word.
    #[test]
    fn a_long_cluster_shares_its_word() {
        let cluster = format!("-{}", "n".repeat(100_000));
        let split = split(&["-L", cluster.as_str()]);
        let occurrences: Vec<&Occurrence> =
            split.items.iter().map(|o| o.as_ref().unwrap()).collect();
        assert_eq!(occurrences.len(), 100_001);
        let first = &occurrences[1].word;
        assert!(occurrences[1..].iter().all(|o| Rc::ptr_eq(&o.word, first)));
        assert_eq!(&**first, cluster.as_str());
        // A value taken from the next word names that word.
        let split = super::split(&["-nt", "1.2.3.4:80"]);
        let t = split.items[1].as_ref().unwrap();
        assert_eq!(
            (&*t.word, t.value.as_deref()),
            ("1.2.3.4:80", Some("1.2.3.4:80"))
        );
    }

    #[test]
    fn clusters_and_values() {
        assert_eq!(
            opts(&["-Lnc"]),
            vec![
                (Opt::List, None),
                (Opt::Numeric, None),
                (Opt::Connection, None)
            ]
        );
        assert_eq!(
            opts(&["-At", "1.2.3.4:80", "-srr"]),
            vec![
                (Opt::AddService, None),
                (Opt::TcpService, Some("1.2.3.4:80".into())),
                (Opt::Scheduler, Some("rr".into()))
            ]
        );
        assert_eq!(
            opts(&["--tcp-service=1.2.3.4:80", "--scheduler", "wlc"]),
            vec![
                (Opt::TcpService, Some("1.2.3.4:80".into())),
                (Opt::Scheduler, Some("wlc".into()))
            ]
        );
    }

    /// popt 1.19 (checked against libpopt0 1.19+dfsg-1 with ipvsadm's option table): one `=`
    /// after a short option that takes a value is dropped; after one that takes none it is an
    /// error, as is `--long=value` for such an option.
    #[test]
    fn equals_after_short_options() {
        assert_eq!(opts(&["-s=rr"]), vec![(Opt::Scheduler, Some("rr".into()))]);
        assert_eq!(
            opts(&["-s==rr"]),
            vec![(Opt::Scheduler, Some("=rr".into()))]
        );
        assert_eq!(opts(&["-s="]), vec![(Opt::Scheduler, Some(String::new()))]);
        assert_eq!(
            opts(&["-At=1.2.3.4:80"]),
            vec![
                (Opt::AddService, None),
                (Opt::TcpService, Some("1.2.3.4:80".into()))
            ]
        );
        assert_eq!(opts(&["-p=5"]), vec![(Opt::Persistent, Some("5".into()))]);
        assert_eq!(opts(&["-p="]), vec![(Opt::Persistent, Some(String::new()))]);
        for (words, spelled) in [
            (&["-L=n"][..], "-L=n"),
            (&["-Ln=c"][..], "-Ln=c"),
            (&["-L="][..], "-L="),
            (&["--list=x"][..], "--list=x"),
        ] {
            assert_eq!(
                split(words).items.into_iter().find_map(Result::err),
                Some(BadOption {
                    spelled: spelled.into(),
                    reason: "option does not take an argument"
                }),
                "{words:?}"
            );
        }
    }

    #[test]
    fn persistent_value_is_optional() {
        assert_eq!(opts(&["-p"]), vec![(Opt::Persistent, None)]);
        assert_eq!(
            opts(&["-p", "600"]),
            vec![(Opt::Persistent, Some("600".into()))]
        );
        assert_eq!(
            opts(&["-p600"]),
            vec![(Opt::Persistent, Some("600".into()))]
        );
        assert_eq!(
            opts(&["-p", "-M", "255.255.255.0"]),
            vec![
                (Opt::Persistent, None),
                (Opt::Netmask, Some("255.255.255.0".into()))
            ]
        );
        assert_eq!(
            opts(&["--persistent=60"]),
            vec![(Opt::Persistent, Some("60".into()))]
        );
    }

    #[test]
    fn errors_and_arguments() {
        let s = split(&["--set", "1", "2", "--", "-3"]);
        assert_eq!(s.args, vec!["1", "2", "-3"]);
        let s = split(&["-L", "--bogus", "-n"]);
        assert_eq!(s.items.len(), 2);
        assert_eq!(
            s.items[1],
            Err(BadOption {
                spelled: "--bogus".into(),
                reason: "unknown option"
            })
        );
        let s = split(&["-A", "-t"]);
        assert_eq!(
            s.items[1],
            Err(BadOption {
                spelled: "-t".into(),
                reason: "missing argument"
            })
        );
        assert!(split(&["-Q"]).items[0].is_err());
        // popt names the whole word.
        let bad = |words: &[&str]| split(words).items.into_iter().find_map(Result::err);
        assert_eq!(
            bad(&["-L", "-nQ"]),
            Some(BadOption {
                spelled: "-nQ".into(),
                reason: "unknown option"
            })
        );
        assert_eq!(
            bad(&["-At"]),
            Some(BadOption {
                spelled: "-At".into(),
                reason: "missing argument"
            })
        );
        assert_eq!(
            bad(&["-L", "--bogus=5"]).map(|b| b.spelled),
            Some("--bogus=5".into())
        );
        assert_eq!(opts(&["--counters"]), vec![(Opt::Counters, None)]);
        assert!(split(&["--counters=1"]).items[0].is_err());
    }
}
