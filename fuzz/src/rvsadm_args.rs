//! rvsadm's command-line parser (`parse_args_with`): the input, read as text, split at
//! whitespace into arguments. Names resolve through a fixed table, never through DNS. An
//! accepted command line must give a command the control protocol can encode; a refused one
//! an error with one of ipvsadm's exit codes for a bad command line (2 or 255).

use rvs_api::encode_command;
use rvsadm::{parse_args_with, Action, ParseError, PortProto, StaticResolver};

/// Runs the target.
pub fn target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split_whitespace().collect();
    check(parse_args_with(&words, &resolver()));
}

/// The names the rvsadm targets know (for `-t web:http` and the like).
pub fn resolver() -> StaticResolver {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    StaticResolver::new()
        .host("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST))
        .host("web", IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)))
        .host("web", IpAddr::V6(Ipv6Addr::LOCALHOST))
        .service("http", 80, PortProto::Tcp)
        .service("domain", 53, PortProto::Udp)
}

/// The checks on a parse result, shared with the restore target.
pub fn check(result: Result<Action, ParseError>) {
    match result {
        Ok(Action::Apply(c)) => {
            encode_command(&c).expect("an accepted command encodes");
        }
        Ok(a) => {
            let _ = format!("{a:?}");
        }
        Err(e) => {
            let _ = e.to_string();
            let code = e.exit_code();
            assert!(code == 2 || code == 255, "exit code {code}");
        }
    }
}
