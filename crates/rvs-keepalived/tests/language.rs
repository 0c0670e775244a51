//! keepalived's configuration language (definitions, conditionals, sequences, include variants,
//! byte-level lexing): each fixture is loaded by rvs and checked against the parsed `Config`, and
//! `keepalived -t` (2.2.7, installed by scripts/install-deps, and in CI) must give the same verdict
//! on the same file with the same `-i`. Without the binary the verdict comparison is skipped with a
//! message; the rvs assertions still run.

mod common;

use rvs_keepalived::model::{Config, VsTarget};
use rvs_keepalived::{check_with, parse_file_with, LoadOptions, Report};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lang")
        .join(rel)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// `keepalived -t -f FILE -l -D [-i ID]`: whether it exits 0, and what it printed.
fn keepalived_verdict(file: &Path, instance: Option<&str>) -> (bool, String) {
    let bin = common::keepalived();
    let mut cmd = Command::new(bin);
    cmd.args(["-t", "-f"]).arg(file).args(["-l", "-D"]);
    if let Some(id) = instance {
        cmd.args(["-i", id]);
    }
    let out = cmd.output().expect("run keepalived -t");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

fn options(instance: &str) -> LoadOptions {
    LoadOptions {
        instance: Some(instance.to_string()),
        net_namespace: None,
    }
}

/// Loads `file` with `-i instance` and asserts rvs and keepalived agree on `valid`.
fn load(file: &Path, instance: &str, valid: bool) -> (Config, Report) {
    let (config, report) = parse_file_with(file, &options(instance));
    assert_eq!(
        report.is_ok(),
        valid,
        "rvs on {} -i {instance}:\n{report}",
        file.display()
    );
    {
        let (ok, text) = keepalived_verdict(file, Some(instance));
        assert_eq!(
            ok,
            valid,
            "keepalived -t on {} -i {instance}:\n{text}",
            file.display()
        );
    }
    (config, report)
}

fn addr_port(t: &VsTarget) -> (IpAddr, u16) {
    match t {
        VsTarget::Addr { addr, port } => (*addr, *port),
        other => panic!("expected an address target, got {other:?}"),
    }
}

/// A real server as (address, port, weight).
type Rs = (IpAddr, u16, Option<u32>);

/// Each virtual server's address and port with its real servers.
fn servers(c: &Config) -> Vec<((IpAddr, u16), Vec<Rs>)> {
    c.virtual_servers
        .iter()
        .map(|vs| {
            let rs = vs
                .real_servers
                .iter()
                .map(|r| (r.addr, r.port, r.weight))
                .collect();
            (addr_port(&vs.target), rs)
        })
        .collect()
}

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rvs-lang-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("write fixture");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The head of a valid virtual server block.
const VS_HEAD: &str = "    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n";

#[test]
fn definitions_are_substituted_when_used() {
    let (c, _) = load(&data("defs.conf"), "main", true);
    assert_eq!(c.global.router_id.as_deref(), Some("defs_test"));
    assert_eq!(
        servers(&c),
        [
            (
                (ip("192.0.2.10"), 80),
                vec![
                    (ip("198.51.100.11"), 80, Some(3)),
                    (ip("198.51.100.12"), 8080, Some(4)),
                ]
            ),
            (
                (ip("192.0.2.10"), 443),
                vec![(ip("198.51.100.13"), 443, Some(1))]
            ),
        ]
    );
    assert_eq!(c.virtual_servers[0].scheduler, "wrr");
    assert_eq!(c.virtual_servers[1].scheduler, "rr");
    // Spans are the lines the definitions were used on.
    assert_eq!(c.virtual_servers[0].real_servers[1].span.line, 23);
}

#[test]
fn multiline_definitions_nest() {
    let (c, _) = load(&data("multiline.conf"), "main", true);
    assert_eq!(
        servers(&c),
        [
            (
                (ip("10.0.0.4"), 80),
                vec![(ip("10.1.0.1"), 80, Some(1)), (ip("10.1.0.2"), 80, Some(2))]
            ),
            (
                (ip("10.0.1.4"), 80),
                vec![(ip("10.1.1.1"), 80, Some(1)), (ip("10.1.1.2"), 80, Some(2))]
            ),
        ]
    );
    // Everything a multi-line definition produces is reported at the line that used it.
    assert_eq!(c.virtual_servers[1].span.line, 27);
    assert_eq!(c.virtual_servers[1].real_servers[1].span.line, 27);
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let file = data("conditional.conf");
    let (c, _) = load(&file, "main", true);
    let vi = &c.vrrp_instances[0];
    assert_eq!(c.global.router_id.as_deref(), Some("main_router"));
    assert_eq!(vi.priority, 240);
    assert_eq!(vi.unicast_src_ip, Some(ip("192.0.2.1")));
    assert_eq!(vi.unicast_peer, [ip("192.0.2.2"), ip("192.0.2.3")]);

    let (c, _) = load(&file, "backup", true);
    let vi = &c.vrrp_instances[0];
    assert_eq!(c.global.router_id.as_deref(), Some("backup_router"));
    assert_eq!(vi.priority, 200);
    assert_eq!(vi.unicast_src_ip, Some(ip("192.0.2.2")));
    assert_eq!(vi.unicast_peer, [ip("192.0.2.1"), ip("192.0.2.3")]);

    // Neither: $PRIORITY stays undefined, so `priority $PRIORITY` is invalid for both.
    let (_, report) = load(&file, "other", false);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.span.as_ref().is_some_and(|s| s.line == 13)),
        "{report}"
    );
}

#[test]
fn sequences_and_lists_replicate_lines() {
    let (c, _) = load(&data("seq.conf"), "main", true);
    assert_eq!(
        servers(&c),
        [
            (
                (ip("10.2.1.1"), 80),
                vec![
                    (ip("10.2.0.1"), 80, Some(1)),
                    (ip("10.2.0.2"), 80, Some(2)),
                    (ip("10.2.0.3"), 80, Some(3)),
                ]
            ),
            (
                (ip("10.2.1.2"), 80),
                vec![
                    (ip("10.2.2.21"), 80, Some(12)),
                    (ip("10.2.2.22"), 80, Some(15)),
                    (ip("10.2.2.23"), 80, Some(1)),
                ]
            ),
        ]
    );
    let vips = |i: usize| -> Vec<String> {
        c.vrrp_instances[i]
            .virtual_ipaddress
            .iter()
            .map(|v| format!("{}/{}", v.addr, v.prefix))
            .collect()
    };
    assert_eq!(
        vips(0),
        [
            "10.3.0.1/24",
            "10.3.1.1/24",
            "10.3.2.1/24",
            "10.4.1.5/32",
            "10.4.1.4/32",
            "10.4.2.5/32",
            "10.4.2.4/32",
        ]
    );
    assert_eq!(
        vips(1),
        ["fe80::20:90:1/64", "fe80::20:a0:1/64", "fe80::20:b0:1/64"]
    );
}

#[test]
fn builtin_definitions() {
    let (c, _) = load(&data("builtins.conf"), "node7", true);
    // ${_HASH} and ${_BANG} start a comment once substituted (keepalived decomments again).
    assert_eq!(c.global.router_id.as_deref(), Some("rvs_node7"));
    let rs = &c.virtual_servers[0].real_servers;
    assert_eq!(rs[0].weight, Some(7));
    assert!(matches!(rs[1].weight, Some(1..=9)), "{:?}", rs[1].weight);
    assert_eq!(rs[2].weight, Some(2));
}

#[test]
fn include_after_substitution_and_conditionals() {
    let file = data("inc/main.conf");
    let (c, _) = load(&file, "backup", true);
    let rs: Vec<IpAddr> = c.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| r.addr)
        .collect();
    assert_eq!(
        rs,
        [
            ip("10.5.1.1"),
            ip("10.5.1.2"),
            ip("10.5.2.1"),
            ip("10.5.4.1"),
            ip("10.5.4.2")
        ]
    );
    assert!(c.virtual_servers[0].real_servers[1]
        .span
        .file
        .ends_with("parts/rs-2.conf"));
    // keepalived's checker reads a copy of the configuration in which the parent already
    // inlined what `@main include ...` included, and then includes it again: the real server
    // is there twice, which both refuse.
    let (_, report) = load(&file, "main", false);
    assert!(
        report.errors.iter().any(|e| e.message.contains("10.5.3.1")
            && e.span
                .as_ref()
                .is_some_and(|s| s.file.ends_with("parts/main-only.conf"))),
        "{report}"
    );
}

#[test]
fn bytes_blanks_and_quotes() {
    let dir = TempDir::new("bytes");
    let mut text = Vec::new();
    text.extend_from_slice(b"# caf\xe9 \xff\xfe not UTF-8 in a comment\n");
    text.extend_from_slice(b"global_defs {\n    router_id a\xc2\xa0b ! \xe9\n}\n");
    text.extend_from_slice(b"virtual_server 10.7.0.1 80 {\n");
    text.extend_from_slice(VS_HEAD.as_bytes());
    text.extend_from_slice(b"    real_server 10.7.1.1 80 {\n        weight 2 # \x80\n    }\n}\n");
    let file = dir.write("bytes.conf", &text);
    let (c, _) = load(&file, "main", true);
    // A no-break space is text, not a blank: one word.
    assert_eq!(c.global.router_id.as_deref(), Some("a\u{a0}b"));
    assert_eq!(c.virtual_servers[0].real_servers[0].weight, Some(2));
}

#[test]
fn quoted_words_keep_their_padding() {
    let dir = TempDir::new("quoted");
    let text = format!(
        "global_defs {{\n    router_id \"  padded id \"\n}}\nvirtual_server 10.7.0.2 80 {{\n{VS_HEAD}    warmup \"  64\"\n    real_server 10.7.1.2 80 {{\n        weight 1\n    }}\n}}\n"
    );
    let file = dir.write("quoted.conf", text.as_bytes());
    let (c, report) = parse_file_with(&file, &options("main"));
    assert_eq!(c.global.router_id.as_deref(), Some("  padded id "));
    // keepalived reads the timer with strtoull, which skips the leading blanks: valid for it.
    // The padded word reaches the keyword parser either way.
    match c.virtual_servers[0].warmup {
        Some(w) => assert_eq!(w, std::time::Duration::from_secs(64)),
        None => assert!(report.to_string().contains("'  64'"), "{report}"),
    }
}

#[test]
fn no_general_line_continuation() {
    // keepalived 2.2.7 joins lines only inside a multi-line $NAME= definition: `foo \` is the
    // two words `foo` and `\`... here `weight 2\` is an invalid weight for both.
    let dir = TempDir::new("cont");
    let text = format!(
        "virtual_server 10.8.0.1 80 {{\n{VS_HEAD}    real_server 10.8.1.1 80 {{\n        weight 2 \\\n    }}\n}}\n"
    );
    let file = dir.write("cont.conf", text.as_bytes());
    load(&file, "main", false);
}

#[test]
fn invalid_sequences_are_reported_at_their_line() {
    let dir = TempDir::new("badseq");
    for (body, message) in [
        ("~SEQ(i, 1, -1, 5) x", "Invalid ~SEQ values"),
        (
            "~SEQx(i, -2, 2) x",
            "~SEQx is only valid for positive numbers",
        ),
        ("~SEQ(i) x", "Invalid ~SEQ definition"),
        (
            "~LST({A}, {1, 2}) x",
            "~LST specification has too many values",
        ),
        ("~SEQ x", "Invalid ~SEQ specification"),
    ] {
        let text = format!("global_defs {{\n    router_id bad\n}}\n{body}\n");
        let file = dir.write("bad.conf", text.as_bytes());
        let report = check_with(&file, &options("main"));
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.message.starts_with(message)
                    && e.span.as_ref().is_some_and(|s| s.line == 4)),
            "{body}: {report}"
        );
        {
            let (ok, out) = keepalived_verdict(&file, Some("main"));
            assert!(!ok, "{body}: keepalived:\n{out}");
            assert!(out.contains(message), "{body}: keepalived:\n{out}");
        }
    }
}

#[test]
fn unterminated_quote_is_an_error_for_both() {
    let dir = TempDir::new("quote");
    let file = dir.write("quote.conf", b"global_defs {\n    router_id \"open\n}\n");
    load(&file, "main", false);
}

#[test]
fn runaway_substitutions_are_errors_not_hangs() {
    // keepalived loops forever on these; rvs reports them.
    for text in [
        "$A=$A\nglobal_defs {\n    router_id $A\n}\n",
        "$M=x \\\n$M\n\n$M\n",
        "~SEQ(i, 1, 100000000) @nowhere x\n",
        // The rest of the line after a brace brings the reference back each time.
        "$M=x { ${M} }\nk ${M}\n",
        "~SEQ(i, 1, 3000000) $D=x \\\n",
    ] {
        let (_, report) = rvs_keepalived::parse_str(text, Path::new("runaway.conf"));
        assert!(!report.is_ok(), "{text}");
    }
}

/// A tiny deterministic generator for the property test (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn random_bytes_never_panic() {
    // Bytes biased towards the language's special characters.
    const ALPHABET: &[u8] = b"$@~^{}()\"\\#!,=\n \t_SEQLSTxiA1-0include*?[]/.\xa0\xff";
    let dir = TempDir::new("fuzz");
    let mut rng = Lcg(0x5eed);
    for round in 0..400 {
        let len = (rng.next() % 300) as usize;
        let mut text: Vec<u8> = (0..len)
            .map(|_| {
                if rng.next() % 4 == 0 {
                    (rng.next() % 256) as u8
                } else {
                    ALPHABET[(rng.next() as usize) % ALPHABET.len()]
                }
            })
            .collect();
        if round % 3 == 0 {
            text.splice(0..0, b"$M=a \\\n~SEQ(i,1,3) $M\n".iter().copied());
        }
        let file = dir.write("fuzz.conf", &text);
        let _ = parse_file_with(&file, &options("main"));
        let _ = rvs_keepalived::parse_bytes_with(&text, &file, &LoadOptions::default());
    }
}

#[test]
fn include_variants_follow_keepalived_checks() {
    let dir = TempDir::new("variants");
    dir.write("a.conf", b"global_defs {\n    router_id from_a\n}\n");
    std::fs::create_dir_all(dir.0.join("d")).expect("mkdir");
    let script = dir.write("x.conf", b"global_defs {\n    router_id from_x\n}\n");
    {
        use std::os::unix::fs::PermissionsExt;
        let mut perm = std::fs::metadata(&script).expect("stat").permissions();
        perm.set_mode(0o755);
        std::fs::set_permissions(&script, perm).expect("chmod");
    }
    // (include line, valid, router_id read)
    for (line, valid, router_id) in [
        ("include a.conf", true, Some("from_a")),
        ("include nomatch-*.conf", true, None),
        ("includem nomatch-*.conf", true, None),
        ("includew nomatch-*.conf", false, None),
        ("includem missing.conf", false, None),
        ("include {a,missing}.conf", true, Some("from_a")),
        ("includeb {a,missing}.conf", false, None),
        ("include d", true, None),
        ("includer d", false, None),
        ("include x.conf", true, None),
        ("includer x.conf", false, None),
    ] {
        let file = dir.write("main.conf", format!("{line}\n").as_bytes());
        let (c, report) = parse_file_with(&file, &options("main"));
        assert_eq!(report.is_ok(), valid, "{line}: {report}");
        assert_eq!(c.global.router_id.as_deref(), router_id, "{line}");
        {
            let (ok, out) = keepalived_verdict(&file, Some("main"));
            assert_eq!(ok, valid, "{line}: keepalived:\n{out}");
        }
    }
    // keepalived only logs "Config files missing" for include and includer of a named file
    // that is not there, and runs: a warning for rvs, with keepalived's words.
    for line in ["include missing.conf", "includer missing.conf"] {
        let file = dir.write("main.conf", format!("{line}\n").as_bytes());
        let report = check_with(&file, &options("main"));
        assert!(report.is_ok(), "{line}: {report}");
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.to_string().contains("Config files missing")),
            "{line}: {report}"
        );
        {
            let (ok, out) = keepalived_verdict(&file, Some("main"));
            assert!(ok, "{line}: keepalived:\n{out}");
        }
    }
}

#[test]
fn a_comment_line_ends_a_multiline_definition() {
    // keepalived's checker reads the parent's copy, where a comment-only line is empty, and an
    // empty line ends a multi-line definition: `weight 5 \` is then read at the top level.
    let dir = TempDir::new("mlcomment");
    let body = |comment: &str| {
        format!(
            "$RS= \\\nreal_server 10.9.1.1 80 {{ \\\n{comment}    weight 5 \\\n}}\nvirtual_server 10.9.0.1 80 {{\n{VS_HEAD}    $RS\n}}\n"
        )
    };
    let file = dir.write("ok.conf", body("").as_bytes());
    let (c, _) = load(&file, "main", true);
    assert_eq!(c.virtual_servers[0].real_servers[0].weight, Some(5));
    let file = dir.write("cut.conf", body("# the weight\n").as_bytes());
    load(&file, "main", false);
}
