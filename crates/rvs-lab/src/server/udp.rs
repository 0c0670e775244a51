//! The UDP side of the real server: every datagram is answered with the text and a newline.
//! A datagram starting `big:N:` is answered with N bytes instead (capped at 65000): the text,
//! a line `LEN SUM` about the request (its length and the wrapping sum of its bytes, so the
//! sender can tell it arrived whole), then filler. Large requests and answers are IP-fragmented
//! on the way, which is what the fragment tests need.

use std::net::UdpSocket;

/// Largest answer to a `big:` request.
const BIG_MAX: usize = 65_000;

/// Answers datagrams on `socket` forever (errors are skipped after a short pause).
pub fn echo_loop(socket: UdpSocket, text: &str) {
    let reply = format!("{text}\n");
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                let request = &buf[..n];
                let _ = match big_size(request) {
                    Some(size) => socket.send_to(&big_answer(text, request, size), peer),
                    None => socket.send_to(reply.as_bytes(), peer),
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

/// N of a `big:N:` request.
fn big_size(request: &[u8]) -> Option<usize> {
    let rest = request.strip_prefix(b"big:")?;
    let end = rest.iter().position(|&b| b == b':')?;
    let n: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some(n.min(BIG_MAX))
}

/// The wrapping sum of `bytes`, as the `LEN SUM` line reports it.
pub fn byte_sum(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)))
}

fn big_answer(text: &str, request: &[u8], size: usize) -> Vec<u8> {
    let mut out = format!("{text}\n{} {}\n", request.len(), byte_sum(request)).into_bytes();
    if out.len() < size {
        out.resize(size, b'.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_requests_get_big_answers() {
        assert_eq!(big_size(b"big:3000:xyz"), Some(3000));
        assert_eq!(big_size(b"big:999999:"), Some(BIG_MAX));
        assert_eq!(big_size(b"ping"), None);
        let a = big_answer("hello,10.0.0.2", b"big:100:ab", 100);
        assert_eq!(a.len(), 100);
        assert!(a.starts_with(b"hello,10.0.0.2\n10 "));
    }
}
