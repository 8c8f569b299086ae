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

/// Lowers the calling thread's priority to the nice value `to`, or leaves
/// it where it is if it is already that low (never raises it). Absolute,
/// not relative: a thread inherits its creator's nice value, so a runtime
/// thread started by another one is already lowered. Best effort: returns
/// whether the thread now runs at `to` or lower.
pub fn lower_this_thread_to(to: i32) -> bool {
    imp::lower_to(to.min(19))
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

    pub fn lower_to(to: i32) -> bool {
        match nice() {
            None => false,
            Some(now) if now >= to => true,
            Some(_) => setpriority_process(this_thread(), to).is_ok(),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn nice() -> Option<i32> {
        None
    }

    pub fn lower_to(_: i32) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowering_a_thread_leaves_the_others_and_never_compounds() {
        let before = this_thread_nice().expect("a nice value");
        let to = (before + 3).min(19);
        let (start, lowered, nested) = std::thread::spawn(move || {
            let start = this_thread_nice().expect("a nice value");
            assert!(lower_this_thread_to(to));
            let lowered = this_thread_nice().expect("a nice value");
            // A thread started by a lowered one inherits its value, and
            // lowering it "to" the same value again changes nothing.
            let nested = std::thread::spawn(move || {
                assert!(lower_this_thread_to(to));
                this_thread_nice().expect("a nice value")
            })
            .join()
            .expect("the nested thread ran");
            (start, lowered, nested)
        })
        .join()
        .expect("the thread ran");
        assert_eq!(start, before, "a new thread starts at its creator's");
        assert_eq!(lowered, to);
        assert_eq!(nested, to, "not lowered twice");
        assert_eq!(this_thread_nice(), Some(before), "the caller is untouched");
        assert!(lower_this_thread_to(before), "already there");
        assert_eq!(this_thread_nice(), Some(before), "never raised");
    }
}
