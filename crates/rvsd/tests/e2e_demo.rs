//! The README's first command, `rvs-lab demo`, run against the real rvsd and rvsadm: it must see
//! the seed's round-robin alternation and tear everything down.

use std::process::Command;

#[test]
fn readme_demo_runs_end_to_end() {
    let lab =
        rvs_lab::find_bin("rvs-lab").expect("rvs-lab binary (built by cargo test --workspace)");
    let out = Command::new(lab)
        .arg("demo")
        .output()
        .expect("run rvs-lab demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("hello,10.10.10.2") && stdout.contains("hello,10.10.10.3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Masq"),
        "the demo prints rvsadm -Ln: {stdout}"
    );
    assert!(
        stdout.contains("IPVS connection entries"),
        "the demo prints rvsadm -Lnc: {stdout}"
    );
    // Torn down: no namespace of the demo's lab is left.
    let prefix = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# lab prefix: "))
        .map(str::trim)
        .unwrap_or_else(|| panic!("the demo names its lab prefix: {stdout}"));
    assert!(
        prefix.starts_with("rvsdemo-"),
        "unexpected lab prefix {prefix:?}"
    );
    let left: Vec<String> = rvs_lab::netns::list()
        .expect("list the network namespaces")
        .into_iter()
        .filter(|name| name.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "the demo left namespaces behind: {left:?}");
}
