//! The command line of `rvs-tunrs`: bad invocations are refused with the usage and exit 2, before
//! any device or socket is touched. (Its decapsulation runs end to end in rvsd's e2e_tun tests,
//! which also need this binary built: an integration test here makes `cargo test` build it.)

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvs-tunrs"))
        .args(args)
        .output()
        .expect("run rvs-tunrs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_mode_is_refused_with_usage() {
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("choose --ipip, --gue PORT or --gre"), "{err}");
    assert!(err.contains("usage: rvs-tunrs"), "{err}");
}

#[test]
fn bad_gue_port_and_unknown_arguments_are_refused() {
    for args in [&["--gue", "0"][..], &["--gue"], &["--gue", "http"]] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--gue needs a port 1-65535"),
            "{args:?}: {err}"
        );
    }
    let (code, err) = run(&["--ipip", "--bogus"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown argument --bogus"), "{err}");
    let (code, err) = run(&["--gre", "--dev"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--dev needs a name"), "{err}");
}
