//! Temporary files for atomic writes: created beside their destination, readable like any other file.

use std::path::Path;

/// A temporary file in `dir` (named `{prefix}XXXX{suffix}`), to be filled,
/// synced and renamed onto its destination.
///
/// On Unix it is created with mode 0644 (less the umask), not `tempfile`'s
/// private 0600, so what lands after the rename reads like any written file.
pub fn temp_in(dir: &Path, prefix: &str, suffix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o644));
    }
    b.tempfile_in(dir)
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
}
