//! Running out of room. SQLite answers `SQLITE_FULL` both when the byte quota (`max_page_count`) is reached and
//! when the filesystem has no space left; only the first is helped by the overflow policy, and dropping unsent
//! rows for the second would lose data for nothing. A full disk is met by checkpointing the write-ahead log and
//! truncating it to zero bytes, and by lowering the automatic checkpoint threshold below the size the WAL had
//! reached: on a filesystem smaller than SQLite's default threshold (1000 pages) the WAL would otherwise grow
//! until it fills the disk, and a checkpoint that must grow the database file then finds no room either, so
//! the store would stay stuck after the disk was freed. Changes of state are logged once each.

use super::{schema, Store, StoreError};

/// Slack, in pages, that a write may need beyond its own bytes (b-tree splits, index and meta pages).
const WRITE_SLACK_PAGES: u64 = 16;
/// Bytes a WAL frame adds to its page (the frame header).
const WAL_FRAME_HEADER_BYTES: u64 = 24;
/// Lowest automatic checkpoint threshold, in pages, the store sets after a full disk.
const MIN_AUTOCHECKPOINT_PAGES: u64 = 16;

/// Whether the store could write last time, logged only when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Space {
    /// Writes succeed.
    #[default]
    Available,
    /// The quota is reached and nothing droppable is left.
    QuotaFull,
    /// The filesystem is full while the quota still has room.
    DiskFull,
}

/// What an `SQLITE_FULL` ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shortage {
    /// The database cannot grow by the pages the write needs: the quota is what stops it.
    Quota,
    /// The quota has room for the write, so the filesystem refused it.
    Disk,
}

impl Store {
    /// Tells what an `SQLITE_FULL` for a write of about `bytes` ran into, from the committed state: the quota
    /// when the pages left under `max_page_count` (plus free pages inside the file) cannot hold twice the
    /// write and some slack, else the disk.
    pub(super) fn shortage(&self, bytes: u64) -> Result<Shortage, StoreError> {
        let pragma = |name: &str| -> Result<u64, StoreError> {
            let value: i64 = self.conn.pragma_query_value(None, name, |row| row.get(0))?;
            Ok(u64::try_from(value).unwrap_or(0))
        };
        let room = pragma("max_page_count")?.saturating_sub(pragma("page_count")?)
            + pragma("freelist_count")?;
        let needed = bytes.div_ceil(self.page_size) * 2 + WRITE_SLACK_PAGES;
        Ok(if room < needed {
            Shortage::Quota
        } else {
            Shortage::Disk
        })
    }

    /// Copies the WAL into the database file and truncates it to zero bytes, giving its space back to the
    /// filesystem. Returns whether the WAL is now empty; a failure (the checkpoint itself may need room to
    /// grow the database file) is only logged at debug level, since the caller reports the full disk anyway.
    pub(super) fn release_wal(&self) -> bool {
        match schema::checkpoint_truncate(&self.conn) {
            Ok(complete) => complete,
            Err(error) => {
                tracing::debug!(path = %self.path.display(), %error, "WAL checkpoint on a full disk failed.");
                false
            }
        }
    }

    /// Halves the automatic checkpoint threshold relative to the WAL that just met a full disk, so the WAL
    /// stays well below what the filesystem holds and a checkpoint keeps room to grow the database file.
    /// Only ever lowers it; logged when it changes (a few times at most).
    pub(super) fn cap_wal(&mut self) -> Result<(), StoreError> {
        let wal_bytes = std::fs::metadata(super::open::sidecar(&self.path, "-wal"))
            .map(|meta| meta.len())
            .unwrap_or(0);
        let wal_pages = wal_bytes / (self.page_size + WAL_FRAME_HEADER_BYTES);
        let current: i64 = self
            .conn
            .pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))?;
        let current = u64::try_from(current).unwrap_or(0);
        let wanted = (wal_pages / 2).max(MIN_AUTOCHECKPOINT_PAGES);
        if current == 0 || wanted < current {
            self.conn
                .pragma_update(None, "wal_autocheckpoint", wanted)?;
            tracing::warn!(
                path = %self.path.display(),
                wal_bytes,
                checkpoint_pages = wanted,
                "The WAL met a full disk; checkpointing it more often from now on."
            );
        }
        Ok(())
    }

    /// The error for an `SQLITE_FULL` the quota does not explain.
    pub(super) fn disk_full(&self, source: rusqlite::Error) -> StoreError {
        StoreError::DiskFull {
            path: self.path.clone(),
            source,
        }
    }

    /// Records the outcome of a write and logs when it differs from the previous one.
    pub(super) fn note_space(&mut self, space: Space) {
        if space == self.space {
            return;
        }
        let before = std::mem::replace(&mut self.space, space);
        match space {
            Space::Available => tracing::info!(
                path = %self.path.display(),
                was = ?before,
                "Store has room again; commits resume."
            ),
            Space::QuotaFull => tracing::warn!(
                path = %self.path.display(),
                max_bytes = self.options.max_bytes,
                "Store quota reached and nothing droppable is left; the cycle stays pending."
            ),
            Space::DiskFull => tracing::warn!(
                path = %self.path.display(),
                max_bytes = self.options.max_bytes,
                "The filesystem holding the store is full (the store quota is not reached); commits wait for space."
            ),
        }
    }
}
