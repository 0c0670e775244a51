//! A minimal SMTP client for keepalived's `smtp_alert`: HELO, MAIL FROM, one RCPT TO per
//! `notification_email`, DATA, QUIT. Runs in the background; failures are logged.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use rvs_keepalived::model::GlobalDefs;

/// Where and how to send alerts (from `global_defs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// `smtp_server` host (address or name).
    pub host: String,
    /// `smtp_server` port.
    pub port: u16,
    /// `smtp_helo_name` (default: the router id).
    pub helo: String,
    /// `notification_email_from`.
    pub from: String,
    /// `notification_email`.
    pub to: Vec<String>,
    /// `smtp_connect_timeout` (default 30 s).
    pub timeout: Duration,
}

impl MailSettings {
    /// The mail settings of `global_defs`: `None` without an `smtp_server` or without any
    /// `notification_email` (keepalived then sends nothing). `router_id` is the HELO default.
    pub fn from_global(g: &GlobalDefs, router_id: &str) -> Option<MailSettings> {
        let server = g.smtp_server.as_ref()?;
        if g.notification_email.is_empty() {
            return None;
        }
        Some(MailSettings {
            host: server.host.clone(),
            port: server.port,
            helo: g
                .smtp_helo_name
                .clone()
                .unwrap_or_else(|| router_id.to_owned()),
            from: g
                .notification_email_from
                .clone()
                .unwrap_or_else(|| format!("keepalived@{router_id}")),
            to: g.notification_email.clone(),
            timeout: g.smtp_connect_timeout.unwrap_or(Duration::from_secs(30)),
        })
    }
}

/// `global_defs`' `router_id`, or the host name as keepalived defaults it.
pub fn router_id(g: &GlobalDefs) -> String {
    g.router_id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "rvsd".into())
    })
}

/// Sends one mail with `subject` and `body` in a background thread.
pub fn send_in_background(settings: &MailSettings, subject: String, body: String) {
    let settings = settings.clone();
    let spawned = std::thread::Builder::new()
        .name("rvsd-smtp".into())
        .spawn(move || match send(&settings, &subject, &body) {
            Ok(()) => tracing::info!(subject, "smtp alert sent"),
            Err(e) => tracing::warn!(subject, "smtp alert failed: {e}"),
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the smtp client: {e}");
    }
}

/// Sends one mail and waits for the server's answers.
pub fn send(s: &MailSettings, subject: &str, body: &str) -> std::io::Result<()> {
    let addr = (s.host.as_str(), s.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("smtp_server does not resolve"))?;
    let stream = TcpStream::connect_timeout(&addr, s.timeout)?;
    stream.set_read_timeout(Some(s.timeout))?;
    stream.set_write_timeout(Some(s.timeout))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    expect(&mut reader, 220)?;
    command(&mut w, &mut reader, &format!("HELO {}", s.helo), 250)?;
    command(&mut w, &mut reader, &format!("MAIL FROM:<{}>", s.from), 250)?;
    for rcpt in &s.to {
        command(&mut w, &mut reader, &format!("RCPT TO:<{rcpt}>"), 250)?;
    }
    command(&mut w, &mut reader, "DATA", 354)?;
    let mut msg = format!(
        "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nX-Mailer: rvsd\r\n\r\n",
        s.from,
        s.to.join(", ")
    );
    for line in body.lines() {
        if line.starts_with('.') {
            msg.push('.');
        }
        msg.push_str(line);
        msg.push_str("\r\n");
    }
    msg.push_str(".\r\n");
    w.write_all(msg.as_bytes())?;
    expect(&mut reader, 250)?;
    let _ = w.write_all(b"QUIT\r\n");
    Ok(())
}

fn command(
    w: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    line: &str,
    code: u16,
) -> std::io::Result<()> {
    w.write_all(line.as_bytes())?;
    w.write_all(b"\r\n")?;
    expect(r, code)
}

/// Reads one (possibly multi-line) reply and checks its code.
fn expect(r: &mut BufReader<TcpStream>, code: u16) -> std::io::Result<()> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("smtp server closed the connection"));
        }
        let got: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        if got != code {
            return Err(std::io::Error::other(format!(
                "smtp server answered {:?}, expected {code}",
                line.trim_end()
            )));
        }
        return Ok(());
    }
}
