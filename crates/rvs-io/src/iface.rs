//! Facts about one interface looked up by name in the calling thread's network namespace:
//! its index, Ethernet address and MTU. Names are checked before they reach the kernel.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::IoError;

/// Checks `ifname` can name an interface: 1 to 15 bytes, no NUL.
fn checked_name(ifname: &str) -> Result<CString, IoError> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(IoError::InvalidName {
            name: ifname.to_owned(),
            reason: "interface names have 1 to 15 bytes",
        });
    }
    CString::new(ifname).map_err(|_| IoError::InvalidName {
        name: ifname.to_owned(),
        reason: "contains a NUL byte",
    })
}

/// The index of interface `ifname`.
pub fn ifindex(ifname: &str) -> Result<u32, IoError> {
    let c = checked_name(ifname)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(IoError::NoSuchInterface(ifname.to_owned()));
    }
    Ok(index)
}

/// Runs the `SIOCGIF*` ioctl `request` for `ifname` and returns the filled-in request.
fn query(ifname: &str, request: libc::c_ulong, call: &'static str) -> Result<libc::ifreq, IoError> {
    let name = checked_name(ifname)?;
    // SAFETY: an all-zero ifreq is valid: empty name, zeroed union.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(IoError::last_os("socket(AF_INET) for interface ioctl"));
    }
    // SAFETY: `raw` is a freshly created descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the request reads the NUL-terminated name (at most 15 bytes, the rest zero) from
    // `req` and writes into its union; `req` is a full ifreq that lives across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut req as *mut libc::ifreq) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODEV) {
            return Err(IoError::NoSuchInterface(ifname.to_owned()));
        }
        return Err(IoError::io(call, err));
    }
    Ok(req)
}

/// The Ethernet address of interface `ifname`, or `None` when its hardware address is not an
/// Ethernet one (loopback, TUN, tunnels).
pub fn mac_address(ifname: &str) -> Result<Option<[u8; 6]>, IoError> {
    let req = query(ifname, libc::SIOCGIFHWADDR, "ioctl SIOCGIFHWADDR")?;
    // SAFETY: SIOCGIFHWADDR filled the union's `ifru_hwaddr` member.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Ok(None);
    }
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(hw.sa_data) {
        *dst = src as u8;
    }
    Ok(Some(mac))
}

/// The MTU of interface `ifname`.
pub fn mtu(ifname: &str) -> Result<u32, IoError> {
    let req = query(ifname, libc::SIOCGIFMTU, "ioctl SIOCGIFMTU")?;
    // SAFETY: SIOCGIFMTU filled the union's `ifru_mtu` member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(u32::try_from(mtu).unwrap_or(0))
}

/// The name of the interface with index `index` in this network namespace (read from sysfs);
/// `None` when there is none.
pub fn ifname(index: u32) -> Option<String> {
    std::fs::read_dir("/sys/class/net").ok()?.find_map(|e| {
        let e = e.ok()?;
        let i: u32 = std::fs::read_to_string(e.path().join("ifindex"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (i == index).then(|| e.file_name().to_string_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_facts() {
        assert_eq!(ifindex("lo").expect("lo"), 1);
        assert_eq!(
            mac_address("lo").expect("lo"),
            None,
            "loopback is not Ethernet"
        );
        assert!(mtu("lo").expect("lo") >= 1280);
    }

    #[test]
    fn bad_and_missing_names_are_errors() {
        for bad in ["", "a-name-far-too-long", "a\0b"] {
            assert!(
                matches!(ifindex(bad), Err(IoError::InvalidName { .. })),
                "{bad:?}"
            );
            assert!(
                matches!(mtu(bad), Err(IoError::InvalidName { .. })),
                "{bad:?}"
            );
            assert!(
                matches!(mac_address(bad), Err(IoError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        for missing in ["rvs-no-such0", "../../etc"] {
            assert!(
                matches!(ifindex(missing), Err(IoError::NoSuchInterface(_))),
                "{missing:?}"
            );
            assert!(
                matches!(mtu(missing), Err(IoError::NoSuchInterface(_))),
                "{missing:?}"
            );
        }
    }
}
