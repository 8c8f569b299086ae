//! Thread priorities. The engine thread is the one serial stage every order
//! waits on, and its group commit waits on PostgreSQL; the shared runtime's
//! threads (HTTP connections, streams, steps, blocking work) are parallel
//! and can give way for a moment. So the binary lowers the shared runtime's
//! threads by [`SHARED_RUNTIME_NICE`] steps and leaves the engine's thread
//! (and a local database's processes) at the process' own priority.
//!
//! Only lowering is done: raising a priority needs a privilege, and
//! Clearway needs none. On Linux the nice value is a per-thread attribute
//! and a new thread inherits its creator's, so the engine's thread is
//! started from a thread the binary did not lower (see
//! [`super::EngineHandle::spawn`]). Elsewhere this is a no-op.

/// How many nice steps the binary lowers the shared runtime's threads by
/// (`CLEARWAY_RUNTIME_NICE` sets another; 0 leaves them alone).
pub const SHARED_RUNTIME_NICE: i32 = 5;

/// Lowers the calling thread's priority by `by` nice steps (never raises
/// it). Best effort: returns whether the new value took.
pub fn lower_this_thread(by: i32) -> bool {
    if by <= 0 {
        return false;
    }
    imp::lower(by)
}

/// The calling thread's nice value, where the platform has one per thread.
pub fn this_thread_nice() -> Option<i32> {
    imp::nice()
}

#[cfg(target_os = "linux")]
mod imp {
    use rustix::process::{getpriority_process, setpriority_process};

    // On Linux, PRIO_PROCESS with a thread id names that thread alone.
    fn this_thread() -> Option<rustix::process::Pid> {
        Some(rustix::thread::gettid())
    }

    pub fn nice() -> Option<i32> {
        getpriority_process(this_thread()).ok()
    }

    pub fn lower(by: i32) -> bool {
        let Some(now) = nice() else { return false };
        setpriority_process(this_thread(), (now + by).min(19)).is_ok()
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn nice() -> Option<i32> {
        None
    }

    pub fn lower(_: i32) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowering_a_thread_leaves_the_others() {
        let before = this_thread_nice().expect("a nice value");
        let lowered = std::thread::spawn(|| {
            let start = this_thread_nice().expect("a nice value");
            assert!(lower_this_thread(3));
            (start, this_thread_nice().expect("a nice value"))
        })
        .join()
        .expect("the thread ran");
        assert_eq!(lowered.0, before, "a new thread starts at its creator's");
        assert_eq!(lowered.1, (before + 3).min(19));
        assert_eq!(this_thread_nice(), Some(before), "the caller is untouched");
        assert!(!lower_this_thread(0), "0 changes nothing");
    }
}
