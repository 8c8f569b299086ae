//! The embedded sinks: an append-only event log file and an archive directory
//! (written a batch at a time: files in parallel, each directory synced once).

use crate::steps::StepError;
use crate::steps::publish::StreamRecord;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// An append-only JSON-lines event log; each append is fsynced.
#[derive(Clone, Debug)]
pub struct EventLog {
    path: PathBuf,
    file: Arc<Mutex<()>>,
}

impl EventLog {
    /// Opens (creating) the log at `path`.
    pub fn open(path: impl Into<PathBuf>) -> anyhow::Result<EventLog> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("Failed to create {}", dir.display()))?;
        }
        Ok(EventLog {
            path,
            file: Arc::new(Mutex::new(())),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line per record and syncs the file.
    pub async fn append(&self, records: &[StreamRecord]) -> Result<(), StepError> {
        let mut buf = Vec::with_capacity(records.len() * 256);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(|e| StepError::Permanent(e.into()))?;
            buf.push(b'\n');
        }
        let _guard = self.file.lock().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)?;
            cut_torn_tail(&f)?;
            f.write_all(&buf)?;
            f.sync_data()?;
            Ok(())
        })
        .await
        .map_err(|e| StepError::Transient(e.into()))?
        .context("Failed to append to the event log")?;
        Ok(())
    }

    /// Reads every record (for tests and `ops`).
    pub fn read_all(&self) -> anyhow::Result<Vec<StreamRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).context("Failed to read the event log"),
        };
        // A line without its newline is a torn append (a crash mid-write,
        // never acknowledged): not part of the log.
        let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
        whole
            .lines()
            .map(|l| serde_json::from_str(l).context("Malformed event log line"))
            .collect()
    }
}

/// Cuts a torn last line (an append a crash interrupted, never recorded as
/// done) so the next append starts on a line of its own.
fn cut_torn_tail(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    let mut last = [0u8; 1];
    if len == 0 || (f.read_at(&mut last, len - 1)? == 1 && last[0] == b'\n') {
        return Ok(());
    }
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        f.read_exact_at(buf, start)?;
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            return f.set_len(start + i as u64 + 1);
        }
        end = start;
    }
    f.set_len(0)
}

/// A directory of archived records.
#[derive(Clone, Debug)]
pub struct ArchiveDir {
    root: PathBuf,
}

impl ArchiveDir {
    /// Uses (creating) the directory `root`.
    pub fn open(root: impl Into<PathBuf>) -> anyhow::Result<ArchiveDir> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .with_context(|| format!("Failed to create {}", root.display()))?;
        Ok(ArchiveDir { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes to a temporary file, syncs it, then links it into place; the
    /// link fails if the key exists, so a complete object is never replaced.
    pub async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<Vec<u8>, StepError> {
        let mut out = self.put_many(vec![(key.to_string(), bytes)]).await?;
        Ok(out.remove(0))
    }

    /// [`ArchiveDir::put_if_absent`] for many objects: files are written and
    /// synced on a few threads, then every directory that gained an entry
    /// (and its parents up to the root, which may have gained a directory) is
    /// synced once. Returns what is stored at each key afterwards, in order.
    pub async fn put_many(
        &self,
        objects: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<Vec<u8>>, StepError> {
        if let Some((key, _)) = objects
            .iter()
            .find(|(k, _)| k.contains("..") || k.starts_with('/'))
        {
            return Err(StepError::Permanent(anyhow::anyhow!(
                "invalid object key {key:?}"
            )));
        }
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Vec<u8>>> {
            let jobs: Vec<(PathBuf, Vec<u8>)> = objects
                .into_iter()
                .map(|(k, b)| (root.join(k), b))
                .collect();
            let stored = parallel(&jobs, |(path, bytes)| write_new(path, bytes))?;
            let mut dirs = std::collections::BTreeSet::new();
            for (path, _) in &jobs {
                let mut dir = path.parent();
                while let Some(d) = dir.filter(|d| d.starts_with(&root)) {
                    dirs.insert(d.to_path_buf());
                    dir = d.parent();
                }
            }
            let dirs: Vec<PathBuf> = dirs.into_iter().collect();
            parallel(&dirs, |d| std::fs::File::open(d)?.sync_all())?;
            Ok(stored)
        })
        .await
        .map_err(|e| StepError::Transient(e.into()))?
        .map_err(StepError::Transient)
    }

    /// Reads the object at `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        match tokio::fs::read(self.root.join(key)).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StepError::Transient(e.into())),
        }
    }
}

/// Writes `bytes` at `path` unless a file is there (temporary file, sync,
/// no-replace link); returns what is stored at `path`.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("object key has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp)?;
    match linked {
        Ok(()) => Ok(bytes.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

/// Threads the blocking file work of a batch is spread over.
const THREADS: usize = 32;

/// Runs `f` over `items` on up to [`THREADS`] threads; results in order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> std::io::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let per = items.len().div_ceil(THREADS).max(1);
    let parts: Vec<std::io::Result<Vec<R>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<std::io::Result<Vec<R>>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a file thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for p in parts {
        out.extend(p.context("Failed to write the archive")?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::WorkflowInput;
    use pipeline::{AccountId, Asset, Command, Engine};

    fn records(n: u64) -> Vec<StreamRecord> {
        let mut engine = Engine::new(crate::config::engine_config());
        (1..=n)
            .flat_map(|i| {
                let cmd = Command::deposit(
                    AccountId(i),
                    Asset::parse("USD").unwrap(),
                    rust_decimal::Decimal::from(i),
                );
                let events = engine.apply(cmd.clone(), i).unwrap();
                WorkflowInput::new(cmd, i, events)
            })
            .flat_map(|wf| crate::steps::publish::records(&wf))
            .collect()
    }

    #[tokio::test]
    async fn a_torn_last_line_is_not_read_and_is_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("events.log")).unwrap();
        let recs = records(3);
        log.append(&recs[..1]).await.unwrap();
        // A crash in the middle of the second append leaves half a line.
        let line = serde_json::to_string(&recs[1]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(&line.as_bytes()[..line.len() / 2])
            .unwrap();
        assert_eq!(log.read_all().unwrap(), recs[..1]);
        // The retried append replaces it.
        log.append(&recs[1..]).await.unwrap();
        assert_eq!(log.read_all().unwrap(), recs);
    }
}
