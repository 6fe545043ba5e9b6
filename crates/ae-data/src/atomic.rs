//! Temporary files for atomic writes: created beside their destination, readable like any other file.

use std::path::Path;

/// A temporary file in `dir` (named `{prefix}{pid}-XXXX{suffix}`), to be filled,
/// synced and renamed onto its destination.
///
/// On Unix it is created with mode 0644 (less the umask), not `tempfile`'s
/// private 0600, so what lands after the rename reads like any written file.
///
/// A process killed while writing (Ctrl-C, `kill -9`) cannot remove its
/// temporary file, so the name carries the writer's process id, and every call
/// first removes the files of the same `prefix`/`suffix` in `dir` whose writer
/// is no longer running ([`sweep_stale`]): they do not pile up.
///
/// A missing `dir` is an error naming the folder (not the temporary file).
pub fn temp_in(dir: &Path, prefix: &str, suffix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("the folder {} {what}", dir.display()),
        ));
    }
    sweep_stale(dir, prefix, suffix);
    let prefix = format!("{prefix}{}-", std::process::id());
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o644));
    }
    b.tempfile_in(dir).map_err(|e| {
        // tempfile names its random file in the message; say which folder instead.
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot create a file in {}: {}",
                dir.display(),
                std::io::Error::from(e.kind())
            ),
        )
    })
}

/// Whether process `pid` is running (Linux: `/proc/<pid>` exists). `None`
/// where that cannot be told, and then nothing is swept.
fn alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// Removes the temporary files `{prefix}{pid}-XXXX{suffix}` in `dir` left by
/// processes that are no longer running; returns how many were removed.
/// Errors are ignored (a file another sweeper removed first, a read-only folder).
pub fn sweep_stale(dir: &Path, prefix: &str, suffix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        if !rest.ends_with(suffix) {
            continue;
        }
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id()
            && alive(pid) == Some(false)
            && entry.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn temp_files_are_readable_by_others_not_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let t = super::temp_in(dir.path(), ".x-", ".tmp").unwrap();
        let mode = t.as_file().metadata().unwrap().permissions().mode() & 0o777;
        // tempfile's default is 0600; ours is 0644 less the process's umask.
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|st| {
                let line = st.lines().find(|l| l.starts_with("Umask:"))?.to_string();
                u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
            })
            .unwrap_or(0o022);
        assert_eq!(mode, 0o644 & !umask, "{mode:o}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn temp_files_of_dead_writers_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free (for now).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".x-{dead}-abcd.tmp"));
        let live = dir
            .path()
            .join(format!(".x-{}-efgh.tmp", std::process::id()));
        let other = dir.path().join("keep.tmp");
        for p in [&stale, &live, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let t = super::temp_in(dir.path(), ".x-", ".tmp").unwrap();
        assert!(!stale.exists(), "a dead writer's file is removed");
        assert!(live.exists() && other.exists() && t.path().exists());
        let name = t.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with(&format!(".x-{}-", std::process::id())),
            "{name}"
        );
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-folder");
        let e = super::temp_in(&missing, ".x-", ".tmp").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("no-such-folder") && msg.contains("does not exist"),
            "{msg}"
        );
    }
}
