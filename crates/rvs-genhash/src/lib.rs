//! rvs-genhash: keepalived's `genhash` — fetch one URL from a real server and print the
//! MD5 digest of the response body, ready to paste into an HTTP_GET `digest`.
//!
//! The digest comes from [`rvs_health::http::fetch`], the same code the HTTP_GET and
//! SSL_GET checkers use. The output follows keepalived 2.2 (`keepalived --genhash`):
//! the lowercase hex digest on one line; with `-v` first the header as a hex dump and
//! as text, the body as a hex dump, and the digest as a hex dump.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rvs_health::http::{fetch, hex, HttpError, HttpRequest, HttpResponse, TlsOptions};
use rvs_health::spec::{ConnectOpts, HttpProtocol};

/// The default per-step timeout when `-t` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const DELIM_BEGIN: &str = "-----------------------[";
const DELIM_END: &str = "]-----------------------\n";

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `-s`: server address.
    pub server: IpAddr,
    /// `-p`: server port.
    pub port: u16,
    /// `-u`: request path.
    pub url: String,
    /// `-S`: use TLS.
    pub ssl: bool,
    /// `-I`: send the virtual host as SNI.
    pub sni: bool,
    /// `-V`: virtual host (Host header).
    pub vhost: Option<String>,
    /// `-t`: timeout per I/O step.
    pub timeout: Duration,
    /// `-v`: verbose output.
    pub verbose: bool,
    /// `-P`: HTTP protocol.
    pub protocol: HttpProtocol,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Fetch and print.
    Run(Options),
    /// `-h`: print the usage.
    Help,
}

/// Command-line errors (printed with the usage; exit status 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// An option needs a value and got none.
    #[error("option {0} needs a value")]
    MissingValue(String),
    /// An unknown option or stray argument.
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
    /// `-s` is not an IP address.
    #[error("server should be an IP, not {0}")]
    BadServer(String),
    /// `-p` is not 1..=65535.
    #[error("invalid port number '{0}'")]
    BadPort(String),
    /// `-t` is not a number of seconds.
    #[error("invalid timeout '{0}'")]
    BadTimeout(String),
    /// `-P` is not 1.0, 1.0c or 1.1.
    #[error("invalid HTTP protocol version '{0}'")]
    BadProtocol(String),
    /// `-H` names a hash other than md5.
    #[error("unsupported hash '{0}' (only md5)")]
    BadHash(String),
    /// One of `-s`, `-p`, `-u` is missing.
    #[error("server (-s), port (-p) and url (-u) are required")]
    MissingRequired,
}

/// Errors fetching the URL.
#[derive(Debug, thiserror::Error)]
pub enum GenhashError {
    /// The request failed.
    #[error("cannot fetch {url}: {source}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        #[source]
        source: HttpError,
    },
}

/// The usage text.
pub fn usage(prog: &str) -> String {
    format!(
        "Usage: {prog} COMMAND [OPTIONS]\n\
         Commands:\n   -s server-address -p port -u url\n   -S -s server-address -p port -u url\n   -h\n\n\
         Options:\n\
         Either long or short options are allowed.\n\
         \x20  --use-ssl         -S       Use SSL connection to remote server.\n\
         \x20  --use-sni         -I       Use SNI during SSL handshake (uses virtualhost setting; see -V).\n\
         \x20  --server          -s       Use the specified remote server address.\n\
         \x20  --port            -p       Use the specified remote server port.\n\
         \x20  --url             -u       Use the specified remote server url.\n\
         \x20  --use-virtualhost -V       Use the specified virtualhost in GET query.\n\
         \x20  --hash            -H       Use the specified hash algorithm (md5).\n\
         \x20  --verbose         -v       Use verbose mode output.\n\
         \x20  --help            -h       Display this short inlined help screen.\n\
         \x20  --protocol        -P       Use the specified HTTP protocol - '1.0', 1.0c', '1.1'.\n\
         \x20                               1.0c means 1.0 with 'Connection: close'\n\
         \x20  --timeout         -t       Timeout in seconds\n"
    )
}

fn short_of(arg: &str) -> Option<char> {
    Some(match arg {
        "--help" => 'h',
        "--verbose" => 'v',
        "--use-ssl" => 'S',
        "--use-sni" => 'I',
        "--server" => 's',
        "--hash" => 'H',
        "--use-virtualhost" => 'V',
        "--port" => 'p',
        "--url" => 'u',
        "--protocol" => 'P',
        "--timeout" => 't',
        _ => {
            let mut chars = arg.chars();
            return match (chars.next(), chars.next(), chars.next()) {
                (Some('-'), Some(c), None) if c != '-' => Some(c),
                _ => None,
            };
        }
    })
}

/// Parse the arguments after the program name.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, UsageError> {
    let (mut server, mut port, mut url) = (None, None, None);
    let mut opts = Options {
        server: IpAddr::from([0, 0, 0, 0]),
        port: 0,
        url: String::new(),
        ssl: false,
        sni: false,
        vhost: None,
        timeout: DEFAULT_TIMEOUT,
        verbose: false,
        protocol: HttpProtocol::Http10,
    };
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(arg) = it.next() {
        let opt = short_of(arg).ok_or_else(|| UsageError::Unexpected(arg.to_string()))?;
        let mut value = || {
            it.next()
                .map(str::to_string)
                .ok_or_else(|| UsageError::MissingValue(arg.to_string()))
        };
        match opt {
            'h' => return Ok(Command::Help),
            'v' => opts.verbose = true,
            'S' => opts.ssl = true,
            'I' => opts.sni = true,
            's' => {
                let v = value()?;
                server = Some(v.parse().map_err(|_| UsageError::BadServer(v))?);
            }
            'p' => {
                let v = value()?;
                port = Some(
                    v.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or(UsageError::BadPort(v))?,
                );
            }
            'u' => url = Some(value()?),
            'V' => opts.vhost = Some(value()?),
            't' => {
                let v = value()?;
                let secs = v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| UsageError::BadTimeout(v))?;
                opts.timeout = Duration::from_secs(secs);
            }
            'P' => {
                let v = value()?;
                opts.protocol = match v.as_str() {
                    "1.0" => HttpProtocol::Http10,
                    "1.0c" | "1.0C" => HttpProtocol::Http10Close,
                    "1.1" => HttpProtocol::Http11,
                    _ => return Err(UsageError::BadProtocol(v)),
                };
            }
            'H' => {
                let v = value()?;
                if !v.eq_ignore_ascii_case("md5") {
                    return Err(UsageError::BadHash(v));
                }
            }
            _ => return Err(UsageError::Unexpected(arg.to_string())),
        }
    }
    match (server, port, url) {
        (Some(s), Some(p), Some(u)) => {
            opts.server = s;
            opts.port = p;
            opts.url = u;
            Ok(Command::Run(opts))
        }
        _ => Err(UsageError::MissingRequired),
    }
}

/// keepalived's hex dump: 16 bytes a line, `OOOO ` offset, ` xx` per byte, ` -` after
/// the eighth, then three spaces and the printable characters.
pub fn hex_dump(buf: &[u8]) -> String {
    let mut out = String::new();
    for (line_no, line) in buf.chunks(16).enumerate() {
        out.push_str(&format!("{:04} ", (line_no * 16) & 0xffff));
        for i in 0..16 {
            match line.get(i) {
                Some(b) => out.push_str(&format!(" {b:02x}")),
                None => out.push_str("   "),
            }
            if i == 7 {
                out.push_str(" -");
            }
        }
        out.push_str("   ");
        for i in 0..16 {
            out.push(match line.get(i) {
                Some(&b) if (0x20..=0x7e).contains(&b) => char::from(b),
                Some(_) => '.',
                None => ' ',
            });
        }
        out.push('\n');
    }
    out
}

fn banner(title: &str) -> String {
    format!("{DELIM_BEGIN}{title}{DELIM_END}")
}

/// What genhash prints for `resp`.
pub fn render(resp: &HttpResponse, verbose: bool) -> String {
    let mut out = String::new();
    if verbose {
        out.push_str(&banner("    HTTP Header Buffer    "));
        out.push_str(&hex_dump(&resp.header));
        out.push_str(&banner(" HTTP Header Ascii Buffer "));
        out.push_str(&String::from_utf8_lossy(&resp.header));
        out.push('\n');
        if !resp.body.is_empty() {
            out.push_str(&banner("        HTML Buffer        "));
            out.push_str(&hex_dump(&resp.body));
        }
        out.push('\n');
        out.push_str(&banner("    HTML hash resulting    "));
        out.push_str(&hex_dump(&resp.digest));
        out.push_str(&banner(" HTML hash final resulting "));
    }
    out.push_str(&hex(&resp.digest));
    out.push('\n');
    out
}

/// Fetch the URL `opts` names and return what genhash prints.
pub async fn run(opts: &Options) -> Result<String, GenhashError> {
    let mut conn = ConnectOpts::new(opts.server, opts.port);
    conn.connect_timeout = opts.timeout;
    let req = HttpRequest {
        conn,
        path: opts.url.clone(),
        virtualhost: opts.vhost.clone(),
        protocol: opts.protocol,
        tls: opts.ssl.then(|| TlsOptions {
            sni: if opts.sni { opts.vhost.clone() } else { None },
            ..TlsOptions::default()
        }),
    };
    let scheme = if opts.ssl { "https" } else { "http" };
    let url = format!(
        "{scheme}://{}{}",
        SocketAddr::new(opts.server, opts.port),
        opts.url
    );
    let started = std::time::Instant::now();
    let resp = fetch(&req, opts.verbose)
        .await
        .map_err(|source| GenhashError::Fetch { url, source })?;
    let mut out = render(&resp, opts.verbose);
    if opts.verbose {
        // keepalived's genhash closes its verbose output with the fetch time.
        out.push_str(&format!(
            "\nGlobal response time for [{}] = {} usecs\n",
            opts.url,
            started.elapsed().as_micros()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dump_matches_keepalived_layout() {
        let d = hex_dump(b"<!DOCTYPE html>\nab");
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(
            lines[0],
            "0000  3c 21 44 4f 43 54 59 50 - 45 20 68 74 6d 6c 3e 0a   <!DOCTYPE html>."
        );
        assert!(lines[1].starts_with("0016  61 62    "));
        assert!(lines[1].ends_with("   ab              "));
    }

    #[test]
    fn parses_options() {
        let c = parse_args(&[
            "-s", "10.0.0.1", "-p", "80", "-u", "/x", "-S", "-V", "h", "-t", "3", "-v",
        ])
        .unwrap();
        let Command::Run(o) = c else {
            panic!("not run")
        };
        assert_eq!(o.server, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert!(o.ssl && o.verbose);
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(o.vhost.as_deref(), Some("h"));
        assert_eq!(parse_args(&["-h"]).unwrap(), Command::Help);
        assert_eq!(
            parse_args(&["-s", "x"]),
            Err(UsageError::BadServer("x".into()))
        );
        assert_eq!(
            parse_args(&["-s", "1.2.3.4"]),
            Err(UsageError::MissingRequired)
        );
        assert_eq!(
            parse_args(&["-p", "0"]),
            Err(UsageError::BadPort("0".into()))
        );
        assert_eq!(
            parse_args(&["-p"]),
            Err(UsageError::MissingValue("-p".into()))
        );
        assert!(matches!(
            parse_args(&["extra"]),
            Err(UsageError::Unexpected(_))
        ));
    }
}
