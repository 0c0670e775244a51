//! `rvsd --dump-conf`: golden output for files that use many keywords, run through the real
//! binary. Nothing is started, so no privileges are needed.
//!
//! After an intended change of the lowering or of the dump format, regenerate the golden files
//! with `RVS_BLESS=1 cargo test -p rvsd --test dump_conf` and review the diff.

#[path = "../../rvs-keepalived/tests/common/mod.rs"]
mod keepalived_bin;

use std::path::{Path, PathBuf};
use std::process::Command;

fn keepalived_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rvs-keepalived/tests/data")
        .join(name)
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/dump_conf")
        .join(name)
}

/// Runs `rvsd ARGS` and returns (exit code, stdout, stderr).
fn rvsd(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(args)
        .env("RVS_LOG", "off")
        .output()
        .unwrap_or_else(|e| panic!("running rvsd: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_golden(conf: &str, expected: &str) {
    let path = keepalived_data(conf);
    let (code, stdout, stderr) = rvsd(&["--dump-conf".as_ref(), "-f".as_ref(), path.as_os_str()]);
    assert_eq!(code, Some(0), "rvsd --dump-conf -f {conf}: {stderr}");
    let file = golden(expected);
    if std::env::var_os("RVS_BLESS").is_some() {
        std::fs::write(&file, &stdout).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        return;
    }
    let want = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    if stdout != want {
        // The first differing line and a few after it (enough to see an inserted or lost line).
        let (a, b): (Vec<&str>, Vec<&str>) = (want.lines().collect(), stdout.lines().collect());
        let first = (0..a.len().max(b.len()))
            .find(|&i| a.get(i) != b.get(i))
            .unwrap_or(0);
        let show = |v: &[&str]| -> String {
            v.iter()
                .skip(first)
                .take(4)
                .map(|l| format!("    {l}\n"))
                .collect()
        };
        panic!(
            "rvsd --dump-conf -f {conf} differs from {} (RVS_BLESS=1 regenerates it) at line {} \
             ({} lines wanted, {} got):\n  want:\n{}  got:\n{}",
            file.display(),
            first + 1,
            a.len(),
            b.len(),
            show(&a),
            show(&b)
        );
    }
}

#[test]
fn every_keyword_dump_is_golden() {
    check_golden("every_keyword.conf", "every_keyword.txt");
}

#[test]
fn seed002_dump_is_golden() {
    check_golden("seed002.conf", "seed002.txt");
}

#[test]
fn short_option_is_the_same() {
    let path = keepalived_data("seed002.conf");
    let long = rvsd(&["--dump-conf".as_ref(), "-f".as_ref(), path.as_os_str()]);
    let short = rvsd(&["-d".as_ref(), "-f".as_ref(), path.as_os_str()]);
    assert_eq!(long.0, Some(0), "{}", long.2);
    assert_eq!(long, short);
}

#[test]
fn services_are_ipvsadm_save_lines() {
    let path = keepalived_data("seed002.conf");
    let (code, stdout, stderr) = rvsd(&["-d".as_ref(), "-f".as_ref(), path.as_os_str()]);
    assert_eq!(code, Some(0), "{stderr}");
    let save: Vec<&str> = stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(!save.is_empty(), "{stdout}");
    for line in &save {
        assert!(
            line.starts_with("-A ") || line.starts_with("-a "),
            "not an ipvsadm-save line: {line}\n{stdout}"
        );
    }
    // The parser rvsadm's restore uses accepts every line.
    for line in &save {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        let parsed = rvsadm::parse_restore_args(&args);
        assert!(parsed.is_ok(), "{line}: {parsed:?}");
    }
}

#[test]
fn a_file_that_cannot_load_fails() {
    let missing = std::env::temp_dir().join(format!(
        "rvsd-dump-conf-{}-missing.conf",
        std::process::id()
    ));
    let (code, stdout, stderr) = rvsd(&["-d".as_ref(), "-f".as_ref(), missing.as_os_str()]);
    assert_ne!(code, Some(0), "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("missing.conf"), "{stderr}");
}

#[test]
fn dump_conf_needs_a_file() {
    let (code, _, stderr) = rvsd(&["--dump-conf".as_ref()]);
    assert_ne!(code, Some(0), "{stderr}");
}

/// `rvsd -t` checks what needs the system, which rvs-keepalived's own check leaves out: script
/// security (the script files are looked up) and the smtp_server name (resolved). Its verdict
/// matches `keepalived -t`'s for scripts with and without `enable_script_security` and for a
/// good and a bad smtp_server.
#[test]
fn rvsd_t_checks_scripts_and_smtp_server_as_keepalived() {
    let keepalived = keepalived_bin::keepalived();
    let dir = std::env::temp_dir().join(format!("rvsd-t-system-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let vs = "virtual_server 10.20.0.1 80 {\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    quorum_up /bin/true\n    real_server 10.20.1.1 80 {\n        notify_up \"/bin/true up\"\n        TCP_CHECK {\n        }\n    }\n}\n";
    let cases = [
        ("insecure.conf", vs.to_string()),
        (
            "secure.conf",
            format!("global_defs {{\n    enable_script_security\n    script_user root\n}}\n{vs}"),
        ),
        (
            "bad_smtp_server.conf",
            "global_defs {\n    smtp_server 10.0.0.300\n}\n".to_string(),
        ),
        (
            "smtp_server.conf",
            "global_defs {\n    smtp_server 127.0.0.1 25\n}\n".to_string(),
        ),
    ];
    let mut problems = Vec::new();
    for (name, text) in cases {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        let k = Command::new(&keepalived)
            .args(["-t", "-l", "-D", "-f"])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("running keepalived: {e}"));
        let (code, _, stderr) = rvsd(&["-t".as_ref(), "-f".as_ref(), file.as_os_str()]);
        if k.status.success() != (code == Some(0)) {
            problems.push(format!(
                "{name}: keepalived -t {:?} ({}), rvsd -t {code:?} ({stderr})",
                k.status.code(),
                String::from_utf8_lossy(&k.stderr).trim()
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `--config-id` (keepalived's `-i`) selects the `@ID` lines of the dumped file.
#[test]
fn dump_follows_the_config_id() {
    let dir = std::env::temp_dir().join(format!("rvsd-dump-config-id-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("keepalived.conf");
    std::fs::write(
        &file,
        "global_defs {\n    @rvsdump router_id CHOSEN\n    @^rvsdump router_id OTHER\n}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let with = rvsd(&[
        "-d".as_ref(),
        "--config-id".as_ref(),
        "rvsdump".as_ref(),
        "-f".as_ref(),
        file.as_os_str(),
    ]);
    let without = rvsd(&["-d".as_ref(), "-f".as_ref(), file.as_os_str()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(with.0, Some(0), "{}", with.2);
    assert!(with.1.contains("\nrouter_id CHOSEN\n"), "{}", with.1);
    assert_eq!(without.0, Some(0), "{}", without.2);
    assert!(without.1.contains("\nrouter_id OTHER\n"), "{}", without.1);
}
