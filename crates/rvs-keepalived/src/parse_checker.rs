//! Checker blocks inside `real_server` into [`CheckerSpec`]s.

use crate::checker::{
    CheckerKind, CheckerSpec, CommonCheck, DnsCheck, FileCheck, HttpCheck, MiscCheck, SmtpCheck,
    UdpCheck, UrlCheck,
};
use crate::parse_common::script_argv;
use crate::tree::Statement;
use crate::values::Ctx;
use std::time::Duration;

/// The checker of a checker block keyword (`TCP_CHECK`, `HTTP_GET`, ...) with no options set,
/// or `None` when `keyword` is not one; the inverse of [`CheckerKind::keyword`].
pub fn empty_kind(keyword: &str) -> Option<CheckerKind> {
    Some(match keyword {
        "TCP_CHECK" => CheckerKind::Tcp,
        "HTTP_GET" => CheckerKind::Http(HttpCheck::default()),
        "SSL_GET" => CheckerKind::Ssl(HttpCheck::default()),
        "MISC_CHECK" => CheckerKind::Misc(MiscCheck::default()),
        "DNS_CHECK" => CheckerKind::Dns(DnsCheck::default()),
        "SMTP_CHECK" => CheckerKind::Smtp(SmtpCheck::default()),
        "UDP_CHECK" => CheckerKind::Udp(UdpCheck::default()),
        "PING_CHECK" => CheckerKind::Ping,
        "FILE_CHECK" => CheckerKind::File(FileCheck::default()),
        _ => return None,
    })
}

/// Parses one checker block, `kind` being [`empty_kind`] of its keyword.
pub fn parse_checker(ctx: &mut Ctx<'_>, st: &Statement, kind: CheckerKind) -> Option<CheckerSpec> {
    let body = ctx.block(st)?;
    let mut common = CommonCheck::default();
    let mut kind = kind;
    for item in body {
        if common_keyword(ctx, item, &mut common) {
            continue;
        }
        let handled = match &mut kind {
            CheckerKind::Http(_) | CheckerKind::Ssl(_) if item.keyword == "nb_get_retry" => {
                // Only HTTP_GET/SSL_GET still know it in keepalived 2.2, as deprecated.
                ctx.error(
                    &item.span,
                    "nb_get_retry is deprecated - please use 'retry'",
                );
                if let Some(r) = ctx.u32(item, 0, 0, u32::MAX) {
                    common.retry = Some(r);
                }
                true
            }
            CheckerKind::Http(h) | CheckerKind::Ssl(h) => http_keyword(ctx, item, h),
            CheckerKind::Misc(m) => misc_keyword(ctx, item, m),
            CheckerKind::Dns(d) => dns_keyword(ctx, item, d),
            CheckerKind::Smtp(s) => smtp_keyword(ctx, item, s),
            CheckerKind::Udp(u) => udp_keyword(ctx, item, u),
            CheckerKind::File(f) => file_keyword(ctx, item, f),
            CheckerKind::Tcp | CheckerKind::Ping => false,
        };
        if !handled {
            ctx.unknown(item, &st.keyword);
        }
    }
    let ok = match &kind {
        CheckerKind::Http(h) | CheckerKind::Ssl(h) if h.urls.is_empty() => {
            ctx.error(
                &st.span,
                format!("{}: expected at least one url block", st.keyword),
            );
            false
        }
        CheckerKind::Misc(m) if m.command.is_empty() => {
            ctx.error(&st.span, "MISC_CHECK: expected misc_path");
            false
        }
        CheckerKind::File(f) if f.track_file.is_empty() => {
            ctx.error(&st.span, "FILE_CHECK: expected track_file");
            false
        }
        _ => true,
    };
    ok.then(|| CheckerSpec {
        kind,
        common,
        span: st.span.clone(),
    })
}

/// Handles a keyword every checker accepts; `false` if `st` is not one.
fn common_keyword(ctx: &mut Ctx<'_>, st: &Statement, c: &mut CommonCheck) -> bool {
    match st.keyword.as_str() {
        "connect_ip" => c.connect_ip = ctx.ip(st, 0),
        "connect_port" => c.connect_port = ctx.port(st, 0),
        "bindto" => c.bindto = ctx.ip(st, 0),
        "bind_port" => c.bind_port = ctx.port(st, 0),
        "bind_if" => c.bind_if = ctx.arg(st, 0, "an interface name").map(str::to_string),
        "fwmark" => c.fwmark = ctx.u32(st, 0, 1, u32::MAX),
        "connect_timeout" => {
            c.connect_timeout = ctx.secs_in(
                st,
                0,
                Duration::from_micros(1),
                Duration::from_micros(u64::from(u32::MAX)),
            )
        }
        "retry" => {
            if let Some(r) = ctx.u32(st, 0, 0, u32::MAX) {
                c.retry = Some(r);
            }
        }
        "delay_before_retry" => c.delay_before_retry = ctx.secs(st, 0),
        "delay_loop" => c.delay_loop = ctx.positive_secs(st, 0),
        "warmup" => c.warmup = ctx.secs(st, 0),
        "alpha" => c.alpha = ctx.flag(st),
        // An rvs extension (keepalived warns of an unknown keyword and goes on).
        "client_path" => c.client_path = ctx.flag(st),
        _ => return false,
    }
    ctx.no_block(st);
    true
}

fn http_keyword(ctx: &mut Ctx<'_>, st: &Statement, h: &mut HttpCheck) -> bool {
    match st.keyword.as_str() {
        "url" => {
            if let Some(url) = parse_url(ctx, st) {
                h.urls.push(url);
            }
        }
        "virtualhost" => {
            h.virtualhost = ctx
                .lenient_missing(|c| c.arg(st, 0, "a host name"))
                .map(str::to_string)
        }
        "http_protocol" => {
            h.http_protocol = ctx
                .lenient_missing(|c| c.choice(st, 0, &["1.0", "1.0C", "1.1", "0.9"], true))
                .map(str::to_string)
        }
        "enable_sni" => h.enable_sni = ctx.flag(st).unwrap_or(true),
        "fast_recovery" => h.fast_recovery = ctx.flag(st).unwrap_or(true),
        _ => return false,
    }
    true
}

fn parse_url(ctx: &mut Ctx<'_>, st: &Statement) -> Option<UrlCheck> {
    let body = ctx.block(st)?;
    let mut url = UrlCheck::default();
    let mut have_path = false;
    for item in body {
        match item.keyword.as_str() {
            // keepalived keeps the first word only: in the one-line form
            // `url { path / status_code 200 }` the status code is part of the path line and
            // ignored.
            "path" => {
                if let Some(p) = ctx.arg(item, 0, "a path") {
                    url.path = p.to_string();
                    have_path = true;
                }
            }
            "digest" => {
                if let Some(d) = ctx.arg(item, 0, "an MD5 digest (32 hex digits)") {
                    if d.len() == 32 && d.chars().all(|c| c.is_ascii_hexdigit()) {
                        url.digest = Some(d.to_ascii_lowercase());
                    } else {
                        ctx.error(
                            &item.span,
                            format!("digest: expected an MD5 digest (32 hex digits), got '{d}'"),
                        );
                    }
                }
            }
            "status_code" => {
                if item.args.is_empty() {
                    ctx.error(&item.span, "status_code: expected a status code or range");
                }
                for raw in &item.args {
                    match parse_status(raw) {
                        Some(r) => url.status_codes.push(r),
                        None => ctx.error(
                            &item.span,
                            format!(
                                "status_code: expected a code 100-999 or a range like 200-299, got '{raw}'"
                            ),
                        ),
                    }
                }
            }
            "virtualhost" => {
                url.virtualhost = ctx
                    .lenient_missing(|c| c.arg(item, 0, "a host name"))
                    .map(str::to_string)
            }
            "regex" => url.regex = ctx.lenient_missing(|c| c.text(item, "a regular expression")),
            "regex_no_match" => url.regex_no_match = ctx.flag(item).unwrap_or(true),
            "regex_options" => url.regex_options = item.args.clone(),
            "regex_min_offset" => {
                url.regex_min_offset = ctx.lenient_missing(|c| c.u32(item, 0, 0, u32::MAX))
            }
            "regex_max_offset" => {
                url.regex_max_offset = ctx.lenient_missing(|c| c.u32(item, 0, 0, u32::MAX))
            }
            "regex_stack" => ctx.ignored(item),
            _ => ctx.unknown(item, "url"),
        }
    }
    if !have_path {
        ctx.error(&st.span, "url: expected a path");
        return None;
    }
    Some(url)
}

/// `200` or `200-299`, each 100-999.
fn parse_status(raw: &str) -> Option<(u16, u16)> {
    let code = |s: &str| s.parse::<u16>().ok().filter(|c| (100..=999).contains(c));
    match raw.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (code(a)?, code(b)?);
            (a <= b).then_some((a, b))
        }
        None => code(raw).map(|c| (c, c)),
    }
}

fn misc_keyword(ctx: &mut Ctx<'_>, st: &Statement, m: &mut MiscCheck) -> bool {
    match st.keyword.as_str() {
        "misc_path" => {
            if ctx.lenient_missing(|c| c.text(st, "a command")).is_some() {
                m.command = script_argv(&st.args);
            }
        }
        "misc_timeout" => m.timeout = ctx.secs(st, 0),
        "misc_dynamic" => m.dynamic = ctx.flag(st).unwrap_or(true),
        "user" => {
            m.user = ctx
                .lenient_missing(|c| c.arg(st, 0, "a user name"))
                .map(str::to_string);
            m.group = st.args.get(1).cloned();
        }
        _ => return false,
    }
    true
}

fn dns_keyword(ctx: &mut Ctx<'_>, st: &Statement, d: &mut DnsCheck) -> bool {
    match st.keyword.as_str() {
        "type" => {
            if let Some(t) = ctx.choice(
                st,
                0,
                &["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"],
                true,
            ) {
                d.query_type = t.to_string();
            }
        }
        "name" => {
            if let Some(n) = ctx.arg(st, 0, "a domain name") {
                d.name = n.to_string();
            }
        }
        _ => return false,
    }
    true
}

fn smtp_keyword(ctx: &mut Ctx<'_>, st: &Statement, s: &mut SmtpCheck) -> bool {
    match st.keyword.as_str() {
        "helo_name" => s.helo_name = ctx.arg(st, 0, "a host name").map(str::to_string),
        "host" => {
            if let Some(body) = ctx.block(st) {
                let mut host = CommonCheck::default();
                for item in body {
                    if !common_keyword(ctx, item, &mut host) {
                        ctx.unknown(item, "host");
                    }
                }
                s.hosts.push(host);
            }
        }
        _ => return false,
    }
    true
}

fn udp_keyword(ctx: &mut Ctx<'_>, st: &Statement, u: &mut UdpCheck) -> bool {
    match st.keyword.as_str() {
        "payload" => u.payload = hex_arg(ctx, st).unwrap_or_default(),
        "require_reply" => {
            u.require_reply = true;
            if !st.args.is_empty() {
                u.reply_prefix = hex_arg(ctx, st).unwrap_or_default();
            }
        }
        "min_reply_length" => u.min_reply_length = ctx.u32(st, 0, 0, 65535),
        "max_reply_length" => u.max_reply_length = ctx.u32(st, 0, 0, 65535),
        _ => return false,
    }
    true
}

fn hex_arg(ctx: &mut Ctx<'_>, st: &Statement) -> Option<Vec<u8>> {
    let raw = st.args.join(" ");
    let bytes = parse_hex(&raw);
    if bytes.is_none() {
        ctx.error(
            &st.span,
            format!(
                "{}: invalid hex string '{raw}' (hex digits, in pairs or separated by spaces)",
                st.keyword
            ),
        );
    }
    bytes
}

/// keepalived's `read_hex_str`: hex digits two to a byte, a lone digit before a space or the
/// end being a byte of its own; no `0x` prefix. Empty or any other character: `None`.
fn parse_hex(raw: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for word in raw.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let digits: Vec<u8> = word
            .chars()
            .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
            .collect::<Option<_>>()?;
        for pair in digits.chunks(2) {
            out.push(match pair {
                [hi, lo] => hi << 4 | lo,
                [one] => *one,
                _ => return None,
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

fn file_keyword(ctx: &mut Ctx<'_>, st: &Statement, f: &mut FileCheck) -> bool {
    match st.keyword.as_str() {
        "track_file" | "file" => {
            if let Some(n) = ctx.arg(st, 0, "a track_file name") {
                f.track_file = n.to_string();
            }
        }
        "weight" => {
            f.weight = ctx.lenient_missing(|c| c.int_as::<i32>(st, 0, -254, 254));
            f.reverse = st.args.get(1).is_some_and(|a| a == "reverse");
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::{empty_kind, parse_hex};

    #[test]
    fn hex_as_keepalived_reads_it() {
        assert_eq!(parse_hex("01020a"), Some(vec![1, 2, 10]));
        assert_eq!(parse_hex("1 2 abc"), Some(vec![1, 2, 0xab, 0xc]));
        assert_eq!(parse_hex("0x01"), None);
        assert_eq!(parse_hex(""), None);
    }

    #[test]
    fn empty_kind_inverts_keyword() {
        let keywords = [
            "TCP_CHECK",
            "HTTP_GET",
            "SSL_GET",
            "MISC_CHECK",
            "DNS_CHECK",
            "SMTP_CHECK",
            "UDP_CHECK",
            "PING_CHECK",
            "FILE_CHECK",
        ];
        for keyword in keywords {
            let kind = empty_kind(keyword).expect(keyword);
            assert_eq!(kind.keyword(), keyword);
        }
        assert!(empty_kind("tcp_check").is_none());
        assert!(empty_kind("weight").is_none());
    }
}
