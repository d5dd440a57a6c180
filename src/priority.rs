//! How background threads compete for the cores. Questions are waited on by a person (and by
//! WeChat's 5-second clock); bulk work is not: passage embedding and the store's index building
//! run at a lower scheduling priority, so a question finds a core even while every core works
//! on an upload.

/// The priority a worker thread runs at.
#[derive(Clone, Copy)]
pub(crate) enum Priority {
    Normal,
    Background,
}

/// The nice value of background workers: the scheduler then gives a normal thread ~10 times
/// their share of a contended core, while idle cores still go to them in full.
const BACKGROUND_NICE: libc::c_int = 10;

impl Priority {
    /// Applies to the calling thread and the threads it starts afterwards (on Linux, nice
    /// values are per thread and inherited; elsewhere this does nothing). Failing to lower a
    /// priority costs only latency: logged, not fatal.
    pub(crate) fn apply(self) {
        #[cfg(target_os = "linux")]
        if let Self::Background = self {
            // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
            let result = unsafe {
                libc::setpriority(
                    libc::PRIO_PROCESS,
                    libc::gettid() as libc::id_t,
                    BACKGROUND_NICE,
                )
            };
            if result != 0 {
                tracing::debug!(
                    error = %std::io::Error::last_os_error(),
                    "cannot lower the priority of a background thread"
                );
            }
        }
    }
}
