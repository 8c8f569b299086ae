//! The development HS256 secret: generated once, kept in `<data_dir>/dev-secret`
//! (mode 0600), so `clearway up` and `clearway token` agree on it.

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
