//! Scheduling class of the calling thread, so background work (bulk listings) yields the CPU
//! to forwarding.
#![allow(unsafe_code)]

use crate::error::IoError;

/// Puts the calling thread (only) in the `SCHED_IDLE` class: it runs when no ordinary thread
/// wants the CPU and never preempts one when it wakes up, which a low nice value alone does not
/// give a thread that sleeps and wakes often. Needs no privilege.
pub fn set_current_thread_idle() -> Result<(), IoError> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid sched_param for SCHED_IDLE.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        return Err(IoError::last_os("sched_setscheduler"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_moves_itself_to_the_idle_class_only() {
        let policy = || {
            // SAFETY: sched_getscheduler(0) only reads the calling thread's policy.
            unsafe { libc::sched_getscheduler(0) }
        };
        let before = policy();
        let inner = std::thread::spawn(move || {
            set_current_thread_idle().unwrap();
            policy()
        })
        .join()
        .unwrap();
        assert_eq!(inner, libc::SCHED_IDLE);
        assert_eq!(policy(), before, "other threads keep theirs");
    }
}
