//! Opening input files safely: every input is a regular file, opened once and read with a cap.
//!
//! `/dev/zero`, a FIFO with no writer, a directory or a socket given where a
//! file is expected would otherwise be read forever, hang in `open`, or fail
//! with an unhelpful message. [`open_regular`] checks the path *before*
//! opening it (so a FIFO is never opened), opens it without blocking, and
//! checks the opened handle again (so a file swapped in between is caught).
//! [`read_capped`] reads a whole file only when its size is within a cap the
//! caller derives from what it expects (a header, a format limit).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

/// What a path names when it is not a regular file.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, ft: &std::fs::FileType) -> DataError {
    DataError::NotRegularFile {
        path: path.into(),
        kind: kind_of(ft),
    }
}

/// Opens `path` for reading if it is a regular file (symbolic links are
/// followed), and returns the file and its size in bytes.
///
/// A FIFO, device, socket or directory is an error naming the path and what it
/// is; the FIFO is never opened, so this cannot hang.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, &meta.file_type()));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Never block in open() should the path have become a FIFO since the
        // check above (O_NONBLOCK has no effect on regular files).
        const O_NONBLOCK: i32 = if cfg!(any(target_os = "linux", target_os = "android")) {
            0o4000
        } else {
            0x0004
        };
        opts.custom_flags(O_NONBLOCK);
    }
    let file = opts.open(path).map_err(|e| DataError::io(path, e))?;
    let meta = file.metadata().map_err(|e| DataError::io(path, e))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, &meta.file_type()));
    }
    Ok((file, meta.len()))
}

/// Reads the whole regular file at `path`, which must hold at most `cap`
/// bytes; `what` says what the file is in the error (e.g. "a .aez file").
///
/// The size is checked before anything is allocated, and the read stops at
/// the size seen then (a file growing meanwhile is an error, not a longer read).
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    if len > cap {
        return Err(DataError::FileTooLarge {
            path: path.into(),
            len,
            cap,
            what: what.to_string(),
        });
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| DataError::io(path, e))?;
    if buf.len() as u64 != len {
        return Err(DataError::io(
            path,
            std::io::Error::other(format!(
                "the file changed while it was read ({len} bytes when opened, {} read)",
                buf.len()
            )),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_regular_file_is_read_and_the_cap_holds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_capped(&p, 5, "x").unwrap(), b"hello");
        let e = read_capped(&p, 4, "a test file").unwrap_err();
        assert!(
            matches!(e, DataError::FileTooLarge { len: 5, cap: 4, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("a test file"), "{e}");
    }

    #[test]
    fn a_directory_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_regular(dir.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_and_a_fifo_are_refused_at_once() {
        let e = read_capped(Path::new("/dev/zero"), u64::MAX, "x").unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        // No writer: opening it for reading would block forever.
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }
}
