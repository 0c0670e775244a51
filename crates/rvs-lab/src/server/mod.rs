//! The built-in real server: `rvs-lab serve --text T --http PORT... --udp PORT...`.
//!
//! A threaded HTTP/1.1 server on `[::]` (dual stack) for each HTTP port and a UDP echo of the
//! text for each UDP port. See [`http`] for the paths it answers.

pub mod http;
pub mod udp;

use std::net::{Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;

use crate::LabError;

/// What one real-server process serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// The answer to `GET /` and to every UDP datagram (a newline is appended).
    pub text: String,
    /// TCP ports with an HTTP server.
    pub http_ports: Vec<u16>,
    /// UDP ports answering each datagram with the text.
    pub udp_ports: Vec<u16>,
}

impl ServeConfig {
    /// Parses the arguments after `serve`: `--text T`, `--http PORT` and `--udp PORT` (repeatable;
    /// `--opt=value` works too). At least one port is required.
    pub fn from_args(args: &[String]) -> Result<ServeConfig, LabError> {
        let mut config = ServeConfig {
            text: "hello".to_string(),
            http_ports: Vec::new(),
            udp_ports: Vec::new(),
        };
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            let value = match inline {
                Some(value) => value,
                None => rest.next().cloned().ok_or_else(|| LabError::Invalid {
                    what: "serve arguments",
                    detail: format!("{name} needs a value"),
                })?,
            };
            match name {
                "--text" => config.text = value,
                "--http" => config.http_ports.push(parse_port(&value)?),
                "--udp" => config.udp_ports.push(parse_port(&value)?),
                other => {
                    return Err(LabError::Invalid {
                        what: "serve arguments",
                        detail: format!("unknown option {other}"),
                    })
                }
            }
        }
        if config.http_ports.is_empty() && config.udp_ports.is_empty() {
            return Err(LabError::Invalid {
                what: "serve arguments",
                detail: "give at least one --http or --udp port".into(),
            });
        }
        Ok(config)
    }

    /// The arguments [`ServeConfig::from_args`] parses back into this config.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--text".to_string(), self.text.clone()];
        for port in &self.http_ports {
            args.extend(["--http".to_string(), port.to_string()]);
        }
        for port in &self.udp_ports {
            args.extend(["--udp".to_string(), port.to_string()]);
        }
        args
    }
}

fn parse_port(value: &str) -> Result<u16, LabError> {
    value.parse().map_err(|_| LabError::Invalid {
        what: "port",
        detail: format!("{value:?} is not a port number"),
    })
}

/// The sockets of a running server, bound and serving on background threads.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound HTTP addresses, in the order of `http_ports` (useful with port 0).
    pub http: Vec<SocketAddr>,
    /// The bound UDP addresses, in the order of `udp_ports`.
    pub udp: Vec<SocketAddr>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Blocks for as long as the server threads run (normally forever).
    pub fn wait(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Binds every port on `[::]` (dual stack) and serves each on its own thread.
pub fn start(config: &ServeConfig) -> Result<RunningServer, LabError> {
    let text = Arc::new(config.text.clone());
    let mut running = RunningServer {
        http: Vec::new(),
        udp: Vec::new(),
        threads: Vec::new(),
    };
    for &port in &config.http_ports {
        let bind = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        let listener =
            TcpListener::bind(bind).map_err(|e| LabError::io(format!("binding tcp {bind}"), e))?;
        running.http.push(
            listener
                .local_addr()
                .map_err(|e| LabError::io("reading a bound address", e))?,
        );
        let text = Arc::clone(&text);
        running.threads.push(std::thread::spawn(move || {
            http::accept_loop(listener, text)
        }));
    }
    for &port in &config.udp_ports {
        let bind = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        let socket =
            UdpSocket::bind(bind).map_err(|e| LabError::io(format!("binding udp {bind}"), e))?;
        running.udp.push(
            socket
                .local_addr()
                .map_err(|e| LabError::io("reading a bound address", e))?,
        );
        let text = Arc::clone(&text);
        running
            .threads
            .push(std::thread::spawn(move || udp::echo_loop(socket, &text)));
    }
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_the_documented_command_line() {
        let config = ServeConfig::from_args(&strings(&[
            "--text",
            "hello,10.10.10.2",
            "--http",
            "80",
            "--http=8080",
            "--udp",
            "5353",
        ]))
        .expect("valid");
        assert_eq!(config.text, "hello,10.10.10.2");
        assert_eq!(config.http_ports, vec![80, 8080]);
        assert_eq!(config.udp_ports, vec![5353]);
        assert_eq!(ServeConfig::from_args(&config.to_args()).ok(), Some(config));
    }

    #[test]
    fn rejects_bad_command_lines() {
        assert!(ServeConfig::from_args(&strings(&["--text", "x"])).is_err());
        assert!(ServeConfig::from_args(&strings(&["--http", "99999"])).is_err());
        assert!(ServeConfig::from_args(&strings(&["--http"])).is_err());
        assert!(ServeConfig::from_args(&strings(&["--bogus", "1"])).is_err());
    }
}
