//! The embedded default's data directory: the development HS256 secret,
//! generated once and kept in `<data_dir>/dev-secret` (mode 0600), so
//! `clearway up` and `clearway token` agree on it; and the lock that keeps
//! one engine to a data directory.

use anyhow::{Context, Result};
use rand::RngCore;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where the secret lives.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-secret")
}

/// Reads the secret, or creates it (32 random bytes, hex) when missing.
pub fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>> {
    let path = secret_path(data_dir);
    if let Some(s) = read(&path)? {
        return Ok(s);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("Failed to create {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match created {
        Ok(mut f) => {
            f.write_all(hex::encode(bytes).as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("Failed to write {}", path.display()))?;
            Ok(hex::encode(bytes).into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.context("the dev secret vanished")
        }
        Err(e) => Err(e).with_context(|| format!("Failed to create {}", path.display())),
    }
}

/// Reads an existing secret.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().as_bytes().to_vec())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
    }
}

/// The data directory's lock: held by the one process that runs an engine
/// and workers on it (`up`, `demo`) for as long as it runs; the operating
/// system releases it when that process ends, however it ends.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Takes `<data_dir>/lock`, or says which process holds it. Two engines on
/// one journal would each refuse the other's sequence numbers; and with the
/// lock held, jobs the journal's queues show as running were left so by a
/// process that is gone (see `workers::transport::dbqueue::release_stopped`).
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("Failed to create {}", data_dir.display()))?;
    let path = data_dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("Failed to open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            Ok(DataDirLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another clearway (pid {}) runs on the data directory {}: stop it, or give this one \
                 another CLEARWAY_DATA_DIR",
                holder.trim(),
                data_dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("Failed to lock {}", path.display()))
        }
    }
}
