//! A TCP connection to the VIP along the client's path, for HTTP_GET and SSL_GET with
//! `client_path`: smoltcp's TCP on a thread of tokio's blocking pool (one per connection; the
//! checker's runtime drives its timers), fed from a packet socket on the interface toward the
//! real server and sending through [`Route::wrap`], its bytes carried to the checker over a
//! `tokio::io::duplex` pair.
//!
//! The director's kernel sees the server's answers too. They come from the VIP, an address of
//! the director's own (DR and TUN directors hold it), so the kernel drops them as martians
//! instead of resetting a connection it does not know.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rvs_io::{PacketSocket, VnetHdr};
use rvs_wire::{ethernet, ip, ipv4, tcp};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Checksum, Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp as stcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;

use super::Route;

/// The largest IP packet smoltcp sends: room for a tunnel's outer headers in 1500 bytes.
const MTU: usize = 1400;
/// How long one turn of the pump waits for frames.
const TURN: Duration = Duration::from_millis(1);
/// Buffer sizes of the TCP socket and the duplex pair.
const BUFFER: usize = 64 * 1024;

/// What the checker waits for: its end of the connection, or why there is none.
type Done = oneshot::Sender<Result<DuplexStream, String>>;

/// Starts the connection to the VIP's `port` along the route `route` finds (called on the
/// blocking pool: finding it may ask the kernel) and returns at once; `done` gets the
/// checker's end once the handshake is done, or why it failed within `timeout`. Must be
/// called within a tokio runtime.
pub(super) fn start(
    route: impl FnOnce() -> Result<(Route, Ipv4Addr), String> + Send + 'static,
    port: u16,
    timeout: Duration,
    done: Done,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        let _ = done.send(Err("client_path runs within a tokio runtime".into()));
        return;
    };
    runtime.clone().spawn_blocking(move || match route() {
        Ok((route, vip)) => runtime.block_on(pump(route, (vip, port), timeout, done)),
        Err(e) => {
            let _ = done.send(Err(e));
        }
    });
}

/// smoltcp's device: IP packets received (queued by the pump) and sent (wrapped, framed).
struct PathDevice<'a> {
    rx: VecDeque<Vec<u8>>,
    send: &'a dyn Fn(&[u8]),
}

struct Rx(Vec<u8>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct Tx<'a>(&'a dyn Fn(&[u8]));

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0u8; len];
        let r = f(&mut packet);
        (self.0)(&packet);
        r
    }
}

impl Device for PathDevice<'_> {
    type RxToken<'b>
        = Rx
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let p = self.rx.pop_front()?;
        Some((Rx(p), Tx(self.send)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(Tx(self.send))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        // Frames taken off a veth or a NIC may carry a partial TCP checksum (the sender left
        // it to offload): computed on sending, not checked on receiving.
        caps.checksum.tcp = Checksum::Tx;
        caps
    }
}

/// The IP packet in `frame` when it is TCP from `vip:port` to `dip:lport`.
fn answer(
    frame: &[u8],
    (vip, port): (Ipv4Addr, u16),
    (dip, lport): (Ipv4Addr, u16),
) -> Option<Vec<u8>> {
    let l3 = frame.get(ethernet::HEADER_LEN..)?;
    let p = ipv4::Packet::new_checked(l3).ok()?;
    if p.protocol() != ip::TCP || p.src_octets() != vip.octets() || p.dst_octets() != dip.octets() {
        return None;
    }
    let t = tcp::Packet::new_checked(l3.get(p.header_len()..)?).ok()?;
    if t.src_port() != port || t.dst_port() != lport {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
    l3.get(..len).map(<[u8]>::to_vec)
}

/// Runs the connection: frames in, smoltcp, bytes to and from the checker, frames out, until
/// either side has closed and everything is delivered, or nothing moved for `timeout`.
async fn pump(route: Route, remote: (Ipv4Addr, u16), timeout: Duration, done: Done) {
    // A port of the probes' range (shared with the SYN probe).
    let lport = rvs_io::probe::probe_port();
    let sockets = PacketSocket::open_watch(&route.ifname)
        .and_then(|rx| PacketSocket::open_tx(&route.ifname).map(|tx| (rx, tx)));
    let (mut rx, tx) = match sockets {
        Ok(s) => s,
        Err(e) => {
            let _ = done.send(Err(format!("packet socket on {}: {e}", route.ifname)));
            return;
        }
    };
    let send = |packet: &[u8]| {
        if let Some(l3) = route.wrap(packet) {
            let frame = rvs_io::probe::ipv4_frame(route.src_mac, route.next_mac, &l3);
            let _ = tx.send(&VnetHdr::default(), &frame);
        }
    };
    let mut device = PathDevice {
        rx: VecDeque::new(),
        send: &send,
    };
    // The seed of smoltcp's initial sequence numbers: a new one per connection (its default
    // is 0, the same ISN every time, which a server holding the port's last use in TIME_WAIT
    // refuses).
    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = u64::from(rvs_io::probe::random_isn(lport)) << 32
        | u64::from(rvs_io::probe::random_isn(lport.wrapping_add(1)));
    let mut iface = Interface::new(config, &mut device, smoltcp::time::Instant::now());
    iface.update_ip_addrs(|addrs| {
        // Prefix 0: every address is on the link, sent straight to the device.
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(route.dip), 0));
    });
    let mut socket = stcp::Socket::new(
        stcp::SocketBuffer::new(vec![0; BUFFER]),
        stcp::SocketBuffer::new(vec![0; BUFFER]),
    );
    // TTL 1, as the SYN probe: only a server that takes the VIP for itself answers.
    socket.set_hop_limit(Some(1));
    if let Err(e) = socket.connect(
        iface.context(),
        (IpAddress::Ipv4(remote.0), remote.1),
        lport,
    ) {
        let _ = done.send(Err(format!("connect: {e}")));
        return;
    }
    let mut sockets = SocketSet::new(vec![]);
    let handle = sockets.add(socket);
    // The checker's end of the byte stream goes to it with `done` once the handshake is done.
    let (checker_end, mut checker) = tokio::io::duplex(BUFFER);
    let mut ready = Some((done, checker_end));
    let mut last_moved = Instant::now();
    let mut checker_open = true;
    let mut buf = vec![0u8; BUFFER];
    loop {
        let _ = rx.recv_batch(TURN, 64, |_, f| {
            if let Some(p) = answer(f, remote, (route.dip, lport)) {
                device.rx.push_back(p);
            }
        });
        iface.poll(smoltcp::time::Instant::now(), &mut device, &mut sockets);
        let socket = sockets.get_mut::<stcp::Socket>(handle);
        let state = socket.state();
        if ready.is_some() {
            if state == stcp::State::Established {
                if let Some((done, end)) = ready.take() {
                    let _ = done.send(Ok(end));
                }
            } else if state == stcp::State::Closed || last_moved.elapsed() > timeout {
                let why = if state == stcp::State::Closed {
                    "refused (RST)".to_string()
                } else {
                    format!("no answer within {timeout:?}")
                };
                if let Some((done, _)) = ready.take() {
                    let _ = done.send(Err(why));
                }
                socket.abort();
                iface.poll(smoltcp::time::Instant::now(), &mut device, &mut sockets);
                return;
            }
            continue;
        }
        let mut moved = false;
        while socket.can_recv() {
            let n = socket.recv_slice(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            moved = true;
            if checker.write_all(&buf[..n]).await.is_err() {
                // The checker is gone: nothing more to take from the server.
                checker_open = false;
                socket.abort();
                break;
            }
        }
        if checker_open && socket.can_send() {
            let room = socket.send_capacity() - socket.send_queue();
            let read = tokio::time::timeout(TURN, checker.read(&mut buf[..room.min(BUFFER)])).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    checker_open = false;
                    socket.close();
                }
                Ok(Ok(n)) => {
                    moved = true;
                    let _ = socket.send_slice(&buf[..n]);
                }
                Err(_) => {}
            }
        }
        if moved {
            last_moved = Instant::now();
        }
        let done = !socket.may_recv() && !socket.can_recv();
        if done || !checker_open && !socket.is_active() || last_moved.elapsed() > timeout {
            // The server finished (or the checker did, or nothing moved): close, send what
            // closing needs, and let the checker read its end of file.
            socket.close();
            iface.poll(smoltcp::time::Instant::now(), &mut device, &mut sockets);
            let _ = checker.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_the_servers_segments_to_our_port_only() {
        let vip = Ipv4Addr::new(10, 0, 0, 200);
        let dip = Ipv4Addr::new(10, 0, 0, 8);
        let frame = |from: (Ipv4Addr, u16), to: (Ipv4Addr, u16)| {
            rvs_io::probe::tcp_frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], from, to, 1, 0, 0x12)
        };
        let ours = frame((vip, 80), (dip, 65501));
        let got = answer(&ours, (vip, 80), (dip, 65501)).expect("ours");
        assert_eq!(got, ours[ethernet::HEADER_LEN..].to_vec());
        assert!(answer(&frame((vip, 80), (dip, 65502)), (vip, 80), (dip, 65501)).is_none());
        assert!(answer(&frame((vip, 443), (dip, 65501)), (vip, 80), (dip, 65501)).is_none());
        assert!(answer(&frame((dip, 80), (vip, 65501)), (vip, 80), (dip, 65501)).is_none());
        assert!(answer(&ours[..30], (vip, 80), (dip, 65501)).is_none());
    }
}
