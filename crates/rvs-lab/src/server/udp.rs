//! The UDP side of the real server: every datagram is answered with the text and a newline.

use std::net::UdpSocket;

/// Answers datagrams on `socket` forever (errors are skipped after a short pause).
pub fn echo_loop(socket: UdpSocket, text: &str) {
    let reply = format!("{text}\n");
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((_, peer)) => {
                let _ = socket.send_to(reply.as_bytes(), peer);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}
