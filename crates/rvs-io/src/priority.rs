//! Scheduling priority of the calling thread, so background work (bulk listings) yields the
//! CPU to forwarding.
#![allow(unsafe_code)]

use crate::error::IoError;

/// Sets the nice value of the calling thread (not the whole process): 0 is the default, 19
/// the lowest priority. Linux keeps a nice value per thread; raising it needs no privilege,
/// lowering it below the current value needs CAP_SYS_NICE.
pub fn set_current_thread_nice(nice: i32) -> Result<(), IoError> {
    let tid = current_tid()?;
    // SAFETY: setpriority takes plain integers; PRIO_PROCESS with a thread id changes that
    // thread only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice.clamp(-20, 19)) };
    if rc != 0 {
        return Err(IoError::last_os("setpriority"));
    }
    Ok(())
}

/// The kernel's id of the calling thread.
fn current_tid() -> Result<libc::id_t, IoError> {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    libc::id_t::try_from(tid).map_err(|_| {
        IoError::io(
            "gettid",
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        )
    })
}

/// The nice value of the calling thread.
pub fn current_thread_nice() -> Result<i32, IoError> {
    let tid = current_tid()?;
    // getpriority may legitimately return -1: clear errno first and check it after.
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: plain integers in, an integer out.
    let value = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    // SAFETY: as above.
    if value == -1 && unsafe { *libc::__errno_location() } != 0 {
        return Err(IoError::last_os("getpriority"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_lowers_its_own_priority_only() {
        let before = current_thread_nice().unwrap();
        let inner = std::thread::spawn(|| {
            set_current_thread_nice(15).unwrap();
            current_thread_nice().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inner, 15);
        assert_eq!(
            current_thread_nice().unwrap(),
            before,
            "other threads keep theirs"
        );
    }
}
