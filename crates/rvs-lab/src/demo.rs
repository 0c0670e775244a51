//! `rvs-lab demo`: seed 004's LVS-NAT walk-through, run against rvsd and printed like a shell
//! session.

use crate::Director;
use std::io::Write;

use crate::{LabError, NatTopology};

/// The ipvsadm commands of seed 004, as rvsadm arguments.
pub const SEED_004_COMMANDS: [&[&str]; 5] = [
    &["-C"],
    &["-A", "-t", "192.168.1.253:80", "-s", "rr"],
    &["-a", "-t", "192.168.1.253:80", "-r", "10.10.10.2:80", "-m"],
    &["-a", "-t", "192.168.1.253:80", "-r", "10.10.10.3:80", "-m"],
    &["-Ln"],
];

/// How many times the client fetches the virtual service.
pub const CURL_COUNT: usize = 6;

/// Whether `answers` alternate between two different real servers, as round robin over two
/// equal real servers must.
pub fn alternates(answers: &[String]) -> bool {
    let mut distinct: Vec<&String> = answers.iter().collect();
    distinct.sort();
    distinct.dedup();
    answers.len() >= 2 && distinct.len() == 2 && answers.windows(2).all(|pair| pair[0] != pair[1])
}

/// Writes `text` to `out`, ignoring a closed stdout (the demo goes on and tears down).
fn say(out: &mut dyn Write, text: &str) {
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Prints `$ rvsadm args` and its output; fails if rvsadm fails.
fn rvsadm_step(topo: &NatTopology, out: &mut dyn Write, args: &[&str]) -> Result<(), LabError> {
    say(
        out,
        &format!("[root@director ~]# rvsadm {}", args.join(" ")),
    );
    let output = topo.rvsadm(args)?;
    let _ = out.write_all(&output.stdout);
    let _ = out.write_all(&output.stderr);
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::CommandFailed {
            command: format!("rvsadm {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Runs the demo; returns whether round robin was seen. With `keep`, the lab stays up and the
/// reader is told how to enter it and how to remove it.
pub fn run(keep: bool, out: &mut dyn Write) -> Result<bool, LabError> {
    run_with(keep, &[], out)
}

/// [`run`] with `rvsd_args` added to rvsd's command line (a data plane, its bounds).
pub fn run_with(keep: bool, rvsd_args: &[&str], out: &mut dyn Write) -> Result<bool, LabError> {
    say(out, "# Building seed 004's LVS-NAT network in namespaces:");
    say(out, "#   client 192.168.1.2 -- d0 192.168.1.253 [director] d1 10.10.10.1 -- switch -- rs1 10.10.10.2, rs2 10.10.10.3");
    let mut topo = NatTopology::build("demo", 2)?;
    say(out, &format!("# lab prefix: {}", topo.lab.prefix()));
    say(
        out,
        "# Real servers: rvs-lab serve --text hello,<rip> --http 80 --http 8080 --udp 5353",
    );
    topo.start_real_servers()?;
    say(
        out,
        &format!(
            "[root@director ~]# rvsd --interface d0 --interface d1 --socket {}{}{} &",
            topo.socket.display(),
            if rvsd_args.is_empty() { "" } else { " " },
            rvsd_args.join(" ")
        ),
    );
    let rvsd = topo.start_rvsd(rvsd_args)?;
    say(out, &format!("[1] {}", rvsd.pid));
    for args in SEED_004_COMMANDS {
        rvsadm_step(&topo, out, args)?;
    }
    let mut answers = Vec::new();
    for _ in 0..CURL_COUNT {
        say(out, "[root@client ~]# curl 192.168.1.253");
        let answer = match topo.curl("http://192.168.1.253/") {
            Ok(body) => body.trim_end().to_string(),
            Err(e) => format!("curl failed: {e}"),
        };
        say(out, &answer);
        answers.push(answer);
    }
    rvsadm_step(&topo, out, &["-Ln"])?;
    rvsadm_step(&topo, out, &["-Lnc"])?;
    let ok = alternates(&answers);
    if ok {
        say(
            out,
            "# Round robin: the answers alternate between the two real servers.",
        );
    } else {
        say(
            out,
            "# FAILED: the answers do not alternate between the two real servers.",
        );
    }
    if keep {
        let prefix = topo.lab.prefix().to_string();
        topo.lab.keep();
        say(out, "# The lab stays up. Enter a namespace with:");
        for ns in topo.lab.namespaces() {
            say(out, &format!("#   ip netns exec {ns} bash"));
        }
        say(
            out,
            &format!(
                "# rvsadm talks to rvsd with: rvsadm --socket {} -Ln",
                topo.socket.display()
            ),
        );
        say(out, &format!("# Logs: {}", topo.lab.log_dir().display()));
        say(out, &format!("# Tear it down with: rvs-lab down {prefix}"));
    } else {
        topo.lab.teardown();
        say(out, "# Torn down.");
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn alternation_is_recognised() {
        assert!(alternates(&owned(&["a", "b", "a", "b", "a", "b"])));
        assert!(!alternates(&owned(&["a", "a", "b", "b", "a", "b"])));
        assert!(!alternates(&owned(&["a", "a", "a"])));
        assert!(!alternates(&owned(&["a", "b", "c"])));
        assert!(!alternates(&owned(&["a"])));
    }
}
