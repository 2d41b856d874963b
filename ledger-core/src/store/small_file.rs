//! Small files beside the log that must survive a crash whole or not at
//! all (per-ledger secrets, settings): written to a temporary name,
//! synced, renamed into place, and the directory synced.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_the_whole_file() {
        let directory = std::env::temp_dir().join(format!("small-file-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("directory");
        let path = directory.join("secret");
        write_durably(&path, b"first").expect("written");
        write_durably(&path, b"second").expect("replaced");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        assert!(
            !directory.join("secret.tmp").exists(),
            "no temporary left behind"
        );
        std::fs::remove_dir_all(&directory).expect("cleaned up");
    }
}
