//! The real binaries (`rvsadm`, `ipvsadm`, `ipvsadm-save`, `ipvsadm-restore`, and links named
//! after ipvsadm's programs) against a small daemon speaking rvsd's protocol on a Unix socket.

use rvs_api::{
    decode_command, encode_reply, read_frame, Command, DestView, Info, RatesView, Reply,
    ServiceConfig, ServiceView, StatsView,
};
use std::io::{BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::sync::{Arc, Mutex};

const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");
const IPVSADM: &str = env!("CARGO_BIN_EXE_ipvsadm");
const IPVSADM_SAVE: &str = env!("CARGO_BIN_EXE_ipvsadm-save");
const IPVSADM_RESTORE: &str = env!("CARGO_BIN_EXE_ipvsadm-restore");

/// The table and the commands received, in order.
#[derive(Default)]
struct State {
    services: Vec<ServiceView>,
    received: Vec<Command>,
}

fn apply(state: &mut State, command: Command) -> Reply {
    state.received.push(command.clone());
    match command {
        Command::GetInfo => Reply::Info(Info {
            version: "1.2.1".into(),
            conn_table_size: 4096,
            daemon: "fake".into(),
        }),
        Command::ListServices { .. } => Reply::Services(state.services.clone()),
        Command::ListMarkRules => Reply::MarkRules(Vec::new()),
        Command::Clear => {
            state.services.clear();
            Reply::Ok
        }
        Command::AddService(config) => {
            state.services.push(ServiceView {
                config,
                stats: StatsView::default(),
                rates: RatesView::default(),
                dests: Vec::new(),
            });
            Reply::Ok
        }
        Command::AddDest { service, dest } => {
            match state.services.iter_mut().find(|s| s.config.id == service) {
                Some(s) => {
                    s.dests.push(DestView {
                        config: dest,
                        active_conns: 0,
                        inactive_conns: 0,
                        persist_conns: 0,
                        stats: StatsView::default(),
                        rates: RatesView::default(),
                    });
                    Reply::Ok
                }
                None => Reply::error(rvs_api::ErrorKind::NoService, ""),
            }
        }
        Command::Batch(commands) => {
            Reply::Batch(commands.into_iter().map(|c| apply(state, c)).collect())
        }
        _ => Reply::Ok,
    }
}

fn serve(stream: UnixStream, state: &Mutex<State>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some(line)) = read_frame(&mut reader) {
        let reply = match decode_command(&line) {
            Ok(command) => apply(&mut state.lock().expect("state"), command),
            Err(e) => Reply::error(rvs_api::ErrorKind::InvalidArgument, e.to_string()),
        };
        let Ok(bytes) = encode_reply(&reply) else {
            return;
        };
        if writer.write_all(&bytes).is_err() {
            return;
        }
    }
}

/// A fake rvsd listening in a directory of its own; the thread ends with the test process.
struct Daemon {
    dir: PathBuf,
    socket: PathBuf,
    state: Arc<Mutex<State>>,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("rvsadm-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("rvsd.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &shared);
            }
        });
        Daemon { dir, socket, state }
    }

    /// Runs `program` (called as `argv0`) with `args` and `stdin` against this daemon.
    fn run(&self, program: &Path, args: &[&str], stdin: &str) -> Output {
        run(program, args, stdin, Some(&self.socket))
    }

    fn received(&self) -> Vec<Command> {
        std::mem::take(&mut self.state.lock().expect("state").received)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(program: &Path, args: &[&str], stdin: &str, socket: Option<&Path>) -> Output {
    let mut cmd = Process::new(program);
    cmd.args(args)
        .env(
            "RVS_SOCKET",
            socket.unwrap_or(Path::new("/nonexistent/rvsd.sock")),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ipvsadm_texts_name_ipvsadm_and_rvsadm_keeps_its_own() {
    let out = run(Path::new(IPVSADM), &["-v"], "", None);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (
            Some(0),
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n".to_string()
        )
    );
    let out = run(Path::new(IPVSADM), &["-h"], "", None);
    let usage = text(&out.stdout);
    assert!(
        usage.starts_with(&format!(
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  {IPVSADM} -A|E"
        )),
        "{usage}"
    );
    let out = run(Path::new(IPVSADM), &["-n", "-L"], "", None);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        format!("Try `{IPVSADM} -h' or '{IPVSADM} --help' for more information.\n")
    );
    let out = run(Path::new(RVSADM), &["-n", "-L"], "", None);
    assert_eq!(
        text(&out.stderr),
        "Try `rvsadm -h' or 'rvsadm --help' for more information.\n"
    );
    assert!(text(&run(Path::new(RVSADM), &["-v"], "", None).stdout).starts_with("rvsadm "));
    let out = run(Path::new(IPVSADM_SAVE), &["-x"], "", None);
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(1),
            "ipvsadm-save: Script to save the IPVS table to stdout.\n   \
             With the -n option, prints out the table in numeric format.\n"
                .to_string()
        )
    );
}

/// A script's session: names from /etc/hosts and /etc/services on input, `ipvsadm-save` with
/// and without `-n`, and `ipvsadm-restore` of the named save (which clears first, then restores).
#[test]
fn ipvsadm_save_and_restore_with_names() {
    let daemon = Daemon::start("names");
    for args in [
        &["-A", "-t", "localhost:https", "-s", "rr"][..],
        &["-a", "-t", "localhost:https", "-r", "localhost:http", "-m"][..],
        &["-A", "-u", "127.0.0.1:domain"][..],
    ] {
        let out = daemon.run(Path::new(IPVSADM), args, "");
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(0), String::new()),
            "{args:?}"
        );
    }
    let numeric = "-A -t 127.0.0.1:443 -s rr\n\
                   -a -t 127.0.0.1:443 -r 127.0.0.1:80 -m -w 1\n\
                   -A -u 127.0.0.1:53 -s wlc\n";
    let named = "-A -t localhost:https -s rr\n\
                 -a -t localhost:https -r localhost:http -m -w 1\n\
                 -A -u localhost:domain -s wlc\n";
    assert_eq!(
        text(&daemon.run(Path::new(IPVSADM_SAVE), &["-n"], "").stdout),
        numeric
    );
    assert_eq!(
        text(&daemon.run(Path::new(IPVSADM_SAVE), &[], "").stdout),
        named
    );
    assert_eq!(
        text(&daemon.run(Path::new(IPVSADM), &["-S"], "").stdout),
        named
    );
    daemon.received();
    let out = daemon.run(
        Path::new(IPVSADM_RESTORE),
        &[],
        &format!("# saved\n{named}"),
    );
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(0), String::new())
    );
    let received = daemon.received();
    // -C travels in the first batch with the first lines: the table is never seen empty.
    let Some(Command::Batch(lines)) = received.first() else {
        panic!("no batch: {received:?}");
    };
    assert_eq!(lines.first(), Some(&Command::Clear), "{received:?}");
    assert_eq!(
        lines.get(1),
        Some(&Command::AddService(ServiceConfig::new(
            rvs_api::ServiceId::Tcp {
                addr: [127, 0, 0, 1].into(),
                port: 443
            },
            "rr"
        )))
    );
    assert_eq!(
        text(&daemon.run(Path::new(IPVSADM_SAVE), &["-n"], "").stdout),
        numeric,
        "the restored table"
    );
}

/// rvsadm linked as ipvsadm's programs runs as them (argv[0] decides).
#[test]
fn links_named_after_ipvsadm() {
    let daemon = Daemon::start("links");
    let ipvsadm = daemon.dir.join("ipvsadm");
    let save = daemon.dir.join("ipvsadm-save");
    std::os::unix::fs::symlink(RVSADM, &ipvsadm).expect("link");
    std::os::unix::fs::symlink(RVSADM, &save).expect("link");
    let out = daemon.run(&ipvsadm, &["-v"], "");
    assert_eq!(
        text(&out.stdout),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
    );
    let out = daemon.run(&ipvsadm, &["-A", "-t", "10.1:80"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&daemon.run(&save, &["-n"], "").stdout),
        "-A -t 10.0.0.1:80 -s wlc\n"
    );
    let listed = text(&daemon.run(&ipvsadm, &["-Ln"], "").stdout);
    assert!(listed.contains("\nTCP  10.0.0.1:80 wlc\n"), "{listed}");
}
