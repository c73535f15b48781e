//! A small tmpfs mounted on a temporary directory (root needed), for tests of a filesystem that fills up. Under
//! `CI=true` a mount that is not possible fails the test instead of skipping it.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

/// A tmpfs of a given size mounted on a temporary directory, unmounted on drop.
pub(crate) struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts it; `None` (after saying why) when this is not possible here. Under `CI=true` that is a failure.
    pub(crate) fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let failure = match output {
            Ok(output) if output.status.success() => return Some(Tmpfs { dir }),
            Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
            Err(error) => error.to_string(),
        };
        let message = format!("cannot mount a {size} tmpfs (root needed): {failure}");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{message}; CI must run this test"
        );
        eprintln!("skipped: {message}");
        None
    }

    /// The mount point.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Appends to a filler file at `path` until the filesystem refuses more.
pub(crate) fn fill(path: &Path) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("filler opens");
    let chunk = vec![0xa5_u8; 4096];
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
}
