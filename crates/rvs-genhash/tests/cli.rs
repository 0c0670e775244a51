//! The rvs-genhash binary against a local HTTP server.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

use std::io::{Read, Write};

const BODY: &[u8] = b"<html><body>rvs genhash test page</body></html>\n";

/// Serve `count` requests on 127.0.0.1 with `BODY` from a plain thread.
fn serve(count: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut s, _)) = l.accept() else { return };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 512];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", BODY.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(BODY);
        }
    });
    port
}

fn genhash(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rvs-genhash"))
        .args(args)
        .output()
        .unwrap()
}

/// MD5 of `BODY` computed by the system's md5sum.
fn md5sum_of_body(test: &str) -> String {
    let path = std::env::temp_dir().join(format!("rvs-genhash-{test}-{}", std::process::id()));
    std::fs::write(&path, BODY).unwrap();
    let out = Command::new("md5sum").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn digest_matches_md5sum_of_body() {
    let port = serve(1).to_string();
    let out = genhash(&["-s", "127.0.0.1", "-p", &port, "-u", "/index.html"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, format!("{}\n", md5sum_of_body("plain")));
}

#[test]
fn verbose_prints_header_body_and_hash_sections() {
    let port = serve(1).to_string();
    let out = genhash(&[
        "-s",
        "127.0.0.1",
        "-p",
        &port,
        "-u",
        "/",
        "-v",
        "-V",
        "www.example.com",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let order = [
        "-----------------------[    HTTP Header Buffer    ]-----------------------\n0000  48 54 54 50",
        "-----------------------[ HTTP Header Ascii Buffer ]-----------------------\nHTTP/1.0 200 OK\r\n",
        "-----------------------[        HTML Buffer        ]-----------------------\n0000  3c 68 74 6d 6c",
        "\n-----------------------[    HTML hash resulting    ]-----------------------\n0000 ",
        "-----------------------[ HTML hash final resulting ]-----------------------\n",
    ];
    let mut at = 0;
    for part in order {
        let found = text[at..]
            .find(part)
            .unwrap_or_else(|| panic!("missing {part:?} in\n{text}"));
        at += found + part.len();
    }
    // The digest, then keepalived's closing timing line.
    let digest_then_timing = format!(
        "{}\n\nGlobal response time for [/] = ",
        md5sum_of_body("verbose")
    );
    assert!(text[at..].starts_with(&digest_then_timing), "{text}");
    assert!(text.ends_with(" usecs\n"), "{text}");
}

#[test]
fn connection_refused_is_a_clear_error() {
    // A port bound but not listening, held until the end: the kernel answers a SYN to it with
    // a RST, and no test running alongside can take it (a port bound and freed at once can be
    // handed to another test's server, which then answers).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _in_runtime = rt.enter();
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let out = genhash(&[
        "-s",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        "/",
        "-t",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("cannot fetch http://127.0.0.1:{port}/")),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn bad_usage_exits_non_zero_with_usage() {
    let out = genhash(&["-s", "not-an-ip", "-p", "80", "-u", "/"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("server should be an IP, not not-an-ip"),
        "{err}"
    );
    assert!(err.contains("Usage:"), "{err}");
    let out = genhash(&["-h"]);
    assert!(out.status.success());
}

/// Output of keepalived's own genhash (Debian's keepalived package, installed by
/// scripts/install-deps) for the same request.
fn keepalived_genhash(args: &[&str]) -> Output {
    Command::new("genhash")
        .args(args)
        .output()
        .expect("keepalived's genhash (apt-get install keepalived; scripts/install-deps does)")
}

/// Drops the one line that legitimately differs between two runs: the fetch time.
fn without_timing(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| !l.starts_with("Global response time for"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn output_is_byte_for_byte_keepalived_genhash() {
    let port = serve(4).to_string();
    for verbose in [false, true] {
        let mut args = vec!["-s", "127.0.0.1", "-p", &port, "-u", "/index.html"];
        if verbose {
            args.push("-v");
        }
        let ours = genhash(&args);
        let theirs = keepalived_genhash(&args);
        assert!(ours.status.success() && theirs.status.success());
        assert_eq!(
            without_timing(&ours.stdout),
            without_timing(&theirs.stdout),
            "rvs-genhash {args:?} differs from keepalived's genhash"
        );
        if verbose {
            let timing = String::from_utf8_lossy(&ours.stdout);
            assert!(
                timing.contains("Global response time for [/index.html] = "),
                "{timing}"
            );
        }
    }
}
