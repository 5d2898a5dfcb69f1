//! A process's wall clock moved with libfaketime (Debian package `libfaketime`, installed by
//! `scripts/install-tools.sh`): preloaded into the operator, it shifts what the process
//! reads as wall time by the offset written in a file it re-reads on every read
//! (`FAKETIME_TIMESTAMP_FILE` + `FAKETIME_NO_CACHE`), while the monotonic clock stays real
//! (`FAKETIME_DONT_FAKE_MONOTONIC`), as on a node whose clock is stepped. Only the processes
//! started with [`FakeClock::env`] are affected; the test process and its servers are not.

use std::{ffi::OsString, path::PathBuf};

/// Where Debian and the usual builds put the library.
const CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The preloadable library; panics, saying how to install it, when it is missing.
pub fn library() -> PathBuf {
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "libfaketime is not installed (looked for {CANDIDATES:?}): \
                 scripts/install-tools.sh installs it (apt-get install libfaketime)"
            )
        })
}

/// The offset file of one faked clock; removed on drop.
pub struct FakeClock {
    file: PathBuf,
    library: PathBuf,
}

impl FakeClock {
    /// A clock `offset` away from the real one, in libfaketime's relative syntax (`+0`,
    /// `+1d`, `-90s`).
    pub fn new(name: &str, offset: &str) -> FakeClock {
        let file = std::env::temp_dir().join(format!(
            "clear-operator-faketime-{name}-{}.rc",
            std::process::id()
        ));
        let clock = FakeClock {
            file,
            library: library(),
        };
        clock.set(offset);
        clock
    }

    /// Moves the clock to `offset` from the real time; the process sees it at its next
    /// read of the wall clock.
    pub fn set(&self, offset: &str) {
        // NB: written aside and renamed, so a read never sees a half-written offset.
        let next = self.file.with_extension("next");
        std::fs::write(&next, format!("{offset}\n")).expect("faketime offset written");
        std::fs::rename(&next, &self.file).expect("faketime offset in place");
    }

    /// The environment of a process whose wall clock this is.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("LD_PRELOAD", self.library.clone().into()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.clone().into()),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ]
    }
}

impl Drop for FakeClock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Removes the shared memory libfaketime leaves behind a process that did not exit cleanly.
pub fn remove_shared_memory(pid: u32) {
    for name in [
        format!("/dev/shm/faketime_shm_{pid}"),
        format!("/dev/shm/sem.faketime_sem_{pid}"),
    ] {
        let _ = std::fs::remove_file(name);
    }
}
