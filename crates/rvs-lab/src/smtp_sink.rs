//! An SMTP sink for tests of alert mail: it accepts any mail on an address inside a lab
//! namespace, answers as a mail server would, and keeps the whole transcript.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Lab, LabError};

/// Listens on `addr` inside `role`'s namespace and returns the transcript (every line the
/// clients sent), which grows as mail arrives. The sink serves until the process ends.
pub fn smtp_sink(lab: &Lab, role: &str, addr: SocketAddr) -> Result<Arc<Mutex<String>>, LabError> {
    let listener = lab
        .try_in_netns(role, || TcpListener::bind(addr))?
        .map_err(|e| LabError::io(format!("binding the SMTP sink on {addr}"), e))?;
    let transcript = Arc::new(Mutex::new(String::new()));
    let out = transcript.clone();
    std::thread::spawn(move || {
        while let Ok((stream, _)) = listener.accept() {
            serve(stream, &out);
        }
    });
    Ok(transcript)
}

/// One SMTP session: 220, 250 to every command, 354 to DATA, 250 after the message, 221 to QUIT.
fn serve(stream: TcpStream, out: &Mutex<String>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    let _ = w.write_all(b"220 sink ESMTP\r\n");
    let mut in_data = false;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        out.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&line);
        let reply: &[u8] = if in_data {
            if line != ".\r\n" {
                continue;
            }
            in_data = false;
            b"250 queued\r\n"
        } else if line.starts_with("DATA") {
            in_data = true;
            b"354 go ahead\r\n"
        } else if line.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n");
            return;
        } else {
            b"250 ok\r\n"
        };
        let _ = w.write_all(reply);
    }
}
