//! Daemon errors in ipvsadm's words (libipvs `ipvs_strerror`: a text per call and errno, else
//! `strerror`).

use rvs_api::{Command, ErrorKind, ErrorReply};
use std::net::{IpAddr, Ipv4Addr};

/// strerror(ERANGE): what ipvsadm prints when the kernel refuses a real server's thresholds.
pub const ERANGE_TEXT: &str = "Numerical result out of range";

/// `ipvs_strerror`'s EINVAL text: a real server address that is not unicast, among others.
pub const EINVAL_TEXT: &str =
    "Invalid operation.  Possibly wrong module version, address not unicast, ...";

/// The text ipvsadm prints when the kernel refuses `command` the way rvsd refused it.
///
/// The command matters: a missing service is "Service not defined" when adding a real server
/// but "No such service" when editing the service. A real server refused for its thresholds
/// (lower above upper) gets the kernel's ERANGE text. Kinds ipvsadm has no wording for
/// (`Unsupported`, `Internal`, and rvs's own reasons for `InvalidArgument`) show the daemon's
/// message; the sync daemons' refusals are ipvsadm's texts already ("Daemon has already run",
/// "No daemon is running").
pub fn error_text(command: &Command, error: &ErrorReply) -> String {
    use Command as C;
    use ErrorKind as K;
    let dest_command = matches!(
        command,
        C::AddDest { .. } | C::EditDest { .. } | C::DelDest { .. }
    );
    if let (K::InvalidArgument, C::AddDest { dest, .. } | C::EditDest { dest, .. }) =
        (error.kind, command)
    {
        // ip_vs_add_dest/ip_vs_edit_dest check the thresholds first.
        if dest.l_threshold > dest.u_threshold {
            return ERANGE_TEXT.to_string();
        }
        // Then ip_vs_new_dest the address type.
        if matches!(command, C::AddDest { .. }) && maybe_not_unicast(dest.addr) {
            return EINVAL_TEXT.to_string();
        }
    }
    let text = match error.kind {
        K::ServiceExists => "Service already exists",
        K::NoService if dest_command => "Service not defined",
        K::NoService => "No such service",
        K::DestExists => "Destination already exists",
        K::NoDest => "No such destination",
        K::NoScheduler | K::NoPersistenceEngine => "Scheduler or persistence engine not found",
        // ipvsadm's text for ENOMEM, and what rvsd says ran out (a data plane's bound).
        K::ResourceExhausted if !error.message.is_empty() => {
            return format!("Memory allocation problem: {}", error.message)
        }
        K::ResourceExhausted => "Memory allocation problem",
        K::InvalidArgument if error.message.is_empty() => {
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        }
        K::Unsupported if error.message.is_empty() => "Operation not supported",
        K::Internal if error.message.is_empty() => "Internal error in rvsd",
        K::InvalidArgument | K::Unsupported | K::Internal => return error.message.clone(),
    };
    text.to_string()
}

/// The real server addresses IPVS may refuse as not unicast (rvsd decides with the director's
/// own addresses, which make an IPv6 link-local address acceptable): 0.0.0.0/8, broadcast,
/// multicast, 127.255.255.255; `::`, multicast, IPv4-mapped, link-local.
fn maybe_not_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            a.octets()[0] == 0
                || a.is_broadcast()
                || a.is_multicast()
                || a == Ipv4Addr::new(127, 255, 255, 255)
        }
        IpAddr::V6(a) => {
            a.is_unspecified()
                || a.is_multicast()
                || a.segments()[..6] == [0, 0, 0, 0, 0, 0xffff]
                || a.segments()[0] & 0xffc0 == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{DestConfig, ForwardMethod, ServiceConfig, ServiceId};

    #[test]
    fn wording_depends_on_command() {
        let id = ServiceId::Tcp {
            addr: IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
            port: 80,
        };
        let dest = DestConfig::new(
            id.socket_addr().expect("addr").ip(),
            80,
            1,
            ForwardMethod::Masq,
        );
        let no_service = ErrorReply::new(ErrorKind::NoService, "");
        assert_eq!(
            error_text(&Command::AddDest { service: id, dest }, &no_service),
            "Service not defined"
        );
        assert_eq!(
            error_text(&Command::DelService(id), &no_service),
            "No such service"
        );
        assert_eq!(
            error_text(
                &Command::AddService(ServiceConfig::new(id, "bogus")),
                &ErrorReply::new(ErrorKind::NoScheduler, "bogus")
            ),
            "Scheduler or persistence engine not found"
        );
        let mut dest = DestConfig::new(
            id.socket_addr().expect("addr").ip(),
            80,
            1,
            ForwardMethod::Masq,
        );
        dest.l_threshold = 3;
        let refused = ErrorReply::new(ErrorKind::InvalidArgument, "lower threshold ...");
        let mut broadcast = dest.clone();
        (broadcast.addr, broadcast.l_threshold) = (IpAddr::V4(Ipv4Addr::BROADCAST), 0);
        assert_eq!(
            error_text(
                &Command::AddDest {
                    service: id,
                    dest: broadcast
                },
                &ErrorReply::new(ErrorKind::InvalidArgument, "not unicast")
            ),
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        );
        assert_eq!(
            error_text(&Command::EditDest { service: id, dest }, &refused),
            "Numerical result out of range"
        );
        assert_eq!(
            error_text(
                &Command::Clear,
                &ErrorReply::new(
                    ErrorKind::Unsupported,
                    "fwmark services are not supported yet"
                )
            ),
            "fwmark services are not supported yet"
        );
    }
}
