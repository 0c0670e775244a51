//! `rvsd --config-id ID` is keepalived's `-i`: `@ID` lines of keepalived.conf apply only to the
//! director with that id, for `--dump-conf`, `-t` and serving alike.

use std::process::Command;

const CONF: &str = "\
$PORT=80
@alpha $PORT=8080
@^alpha $WEIGHT=3
@alpha $WEIGHT=5
virtual_server 10.0.0.1 $PORT {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 10.0.0.2 $PORT {
    weight $WEIGHT
  }
}
";

fn dump(dir: &std::path::Path, id: Option<&str>) -> String {
    let path = dir.join("keepalived.conf");
    std::fs::write(&path, CONF).expect("write the file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvsd"));
    cmd.arg("--dump-conf").arg("-f").arg(&path);
    if let Some(id) = id {
        cmd.args(["--config-id", id]);
    }
    let out = cmd.output().expect("run rvsd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let dir = std::env::temp_dir().join(format!("rvsd-config-id-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let alpha = dump(&dir, Some("alpha"));
    assert!(
        alpha.contains("-a -t 10.0.0.1:8080 -r 10.0.0.2:8080 -m -w 5\n"),
        "{alpha}"
    );
    let beta = dump(&dir, Some("beta"));
    assert!(
        beta.contains("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3\n"),
        "{beta}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
