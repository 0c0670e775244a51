//! Scheduling class of the calling thread, so background work (bulk listings) yields the CPU
//! to forwarding.
#![allow(unsafe_code)]

use crate::error::IoError;

/// Puts the calling thread (only) in the `SCHED_IDLE` class: it runs when no ordinary thread
/// wants the CPU and never preempts one when it wakes up, which a low nice value alone does not
/// give a thread that sleeps and wakes often. Needs no privilege.
pub fn set_current_thread_idle() -> Result<(), IoError> {
    set_policy(libc::SCHED_IDLE)
}

/// Puts the calling thread back in the ordinary (`SCHED_OTHER`) class, for a stretch of
/// background work that holds a lock the data plane also takes: an idle-class thread could be
/// left off the CPU while holding it.
pub fn set_current_thread_normal() -> Result<(), IoError> {
    set_policy(libc::SCHED_OTHER)
}

fn set_policy(policy: libc::c_int) -> Result<(), IoError> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is valid for SCHED_IDLE and SCHED_OTHER.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
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
        let back = std::thread::spawn(move || {
            set_current_thread_idle().unwrap();
            set_current_thread_normal().unwrap();
            policy()
        })
        .join()
        .unwrap();
        assert_eq!(back, libc::SCHED_OTHER);
        assert_eq!(policy(), before, "other threads keep theirs");
    }
}
