//! A client of BIRD's control socket (what `birdc` speaks): one request, its reply.
//!
//! BIRD greets with `0001 BIRD <version> ready.`, then answers each request line with lines
//! of a four-digit code followed by `-` (more lines follow) or a space (the last line); a line
//! starting with a space continues the previous code. Codes 0xxx report success, 8xxx run-time
//! errors and 9xxx parse errors of the request.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a request to BIRD failed.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    /// The control socket could not be reached or broke off.
    #[error("BIRD's control socket {}", .socket.display())]
    Socket {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// BIRD did not speak its protocol (no greeting, or a line without a code).
    #[error("BIRD's control socket {}: unexpected reply {line:?}", .socket.display())]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// The line that was not understood.
        line: String,
    },
    /// BIRD refused the request: its code and text (for `configure`, the configuration
    /// error with file:line).
    #[error("BIRD refused `{request}`: {code} {text}")]
    Refused {
        /// What was asked.
        request: String,
        /// BIRD's reply code (8xxx or 9xxx).
        code: u16,
        /// BIRD's text.
        text: String,
    },
}

/// A successful reply: the last line's code and every line's text, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code of the last line (e.g. 3 for "Reconfigured", 19 for "Nothing to do").
    pub code: u16,
    /// The text of each line, without codes.
    pub lines: Vec<String>,
}

/// One line of BIRD's reply, split.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `CCCC-text` (`last` false) or `CCCC text` (`last` true).
    Coded { code: u16, last: bool, text: String },
    /// ` text`: more of the previous code.
    More(String),
}

/// Splits one reply line (without its newline); `None` if it is not BIRD's format.
fn split_line(line: &str) -> Option<Line> {
    if let Some(rest) = line.strip_prefix(' ') {
        return Some(Line::More(rest.to_owned()));
    }
    let bytes = line.as_bytes();
    if bytes.len() < 5 || !bytes[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = line[..4].parse().ok()?;
    let last = match bytes[4] {
        b' ' => true,
        b'-' => false,
        _ => return None,
    };
    Some(Line::Coded {
        code,
        last,
        text: line[5..].to_owned(),
    })
}

/// Sends `request` (one line, e.g. `configure`) to the BIRD serving `socket` and reads its
/// whole reply; every read and write is bounded by `timeout`.
pub fn request(socket: &Path, request: &str, timeout: Duration) -> Result<Reply, BirdError> {
    let io = |error| BirdError::Socket {
        socket: socket.to_path_buf(),
        error,
    };
    let stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(io)?);
    let mut read_line = || -> Result<Line, BirdError> {
        let mut text = String::new();
        if reader.read_line(&mut text).map_err(io)? == 0 {
            return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let text = text.trim_end_matches(['\n', '\r']);
        split_line(text).ok_or_else(|| BirdError::Protocol {
            socket: socket.to_path_buf(),
            line: text.to_owned(),
        })
    };
    match read_line()? {
        Line::Coded {
            code: 1,
            last: true,
            ..
        } => {}
        other => {
            return Err(BirdError::Protocol {
                socket: socket.to_path_buf(),
                line: format!("{other:?} (expected the greeting 0001)"),
            })
        }
    }
    (&stream)
        .write_all(format!("{request}\n").as_bytes())
        .map_err(io)?;
    let mut lines = Vec::new();
    loop {
        match read_line()? {
            Line::More(text) => lines.push(text),
            Line::Coded { code, last, text } => {
                if code >= 8000 {
                    return Err(BirdError::Refused {
                        request: request.to_owned(),
                        code,
                        text,
                    });
                }
                lines.push(text);
                if last {
                    return Ok(Reply { code, lines });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    #[test]
    fn lines_split_as_bird_writes_them() {
        assert_eq!(
            split_line("0002-Reading configuration from /etc/bird/bird.conf"),
            Some(Line::Coded {
                code: 2,
                last: false,
                text: "Reading configuration from /etc/bird/bird.conf".into()
            })
        );
        assert_eq!(
            split_line("0003 Reconfigured"),
            Some(Line::Coded {
                code: 3,
                last: true,
                text: "Reconfigured".into()
            })
        );
        assert_eq!(
            split_line(" 10.0.0.1/32 blackhole"),
            Some(Line::More("10.0.0.1/32 blackhole".into()))
        );
        assert_eq!(
            split_line("0000 "),
            Some(Line::Coded {
                code: 0,
                last: true,
                text: String::new()
            })
        );
        assert_eq!(split_line("hello"), None);
        assert_eq!(split_line("12a4 x"), None);
        assert_eq!(split_line("0003"), None);
        assert_eq!(split_line("0003+x"), None);
    }

    /// A one-shot BIRD stand-in on a socket in a temporary directory: greets with `greeting`,
    /// reads one request line and answers `reply`.
    fn fake_bird(
        greeting: &'static str,
        reply: &'static str,
    ) -> (PathBuf, std::thread::JoinHandle<String>) {
        let dir = std::env::temp_dir().join(format!(
            "rvs-bird-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bird.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(greeting.as_bytes()).unwrap();
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            while s.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
                got.push(byte[0]);
            }
            s.write_all(reply.as_bytes()).unwrap();
            String::from_utf8(got).unwrap()
        });
        (path, handle)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn a_configure_reply_is_read_to_its_last_line() {
        let (path, bird) = fake_bird(
            "0001 BIRD 2.0.12 ready.\n",
            "0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n",
        );
        let reply = request(&path, "configure", Duration::from_secs(5)).unwrap();
        assert_eq!(bird.join().unwrap(), "configure");
        assert_eq!(reply.code, 3);
        assert_eq!(
            reply.lines,
            [
                "Reading configuration from /etc/bird/bird.conf",
                "Reconfigured"
            ]
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_configuration_error_is_refused_with_its_place() {
        let (path, bird) = fake_bird(
            "0001 BIRD 2.0.12 ready.\n",
            "0002-Reading configuration from bird.conf\n8002 /run/rvsd/vips.conf:4:1 syntax error\n",
        );
        let err = request(&path, "configure", Duration::from_secs(5)).unwrap_err();
        bird.join().unwrap();
        match err {
            BirdError::Refused { code, text, .. } => {
                assert_eq!(code, 8002);
                assert_eq!(text, "/run/rvsd/vips.conf:4:1 syntax error");
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn no_greeting_is_a_protocol_error_and_no_socket_a_socket_error() {
        let (path, bird) = fake_bird("hello\n", "");
        let err = request(&path, "configure", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, BirdError::Protocol { .. }), "{err:?}");
        drop(bird);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let err = request(
            Path::new("/nonexistent/bird.ctl"),
            "configure",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, BirdError::Socket { .. }), "{err:?}");
    }
}
