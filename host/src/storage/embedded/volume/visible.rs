//! Volume writes become visible only once durable (issue #17, point 8).
//!
//! A volume write (a commit, a create, rename or delete, a quota change) is
//! one sled transaction, and sled serves it to every reader the moment it
//! is applied; it is durable only after the barrier's next round
//! (`durable`). Readers of this process (other containers' mounts and
//! reloads, HTTP, the CLI through the owner, the snapshot cache) must not
//! answer with it before then: a power cut could take back what they read,
//! and a write whose fsync failed must never be seen at all. So:
//!
//! - A writer registers its write before applying it (an [`Unconfirmed`]
//!   entry without a ticket), applies it, then records how to undo it and
//!   the barrier ticket that covers it, all under the volume's exclusive
//!   lock. It waits for the ticket after letting go of that lock, so
//!   commits of one volume still share fsync rounds, then confirms.
//! - A reader reads, then settles ([`EmbeddedStore::visible`]): when an
//!   unconfirmed write of what it read is registered (of the volume; of any
//!   volume name for a `NotFound` or a listing), it waits for that write's
//!   ticket before it answers. What it read was in sled before it looked,
//!   so that ticket covers it. With nothing unconfirmed (the common case)
//!   settling is one uncontended mutex.
//! - A failed round poisons the barrier. The writes it did not cover are
//!   then undone in sled, newest first, each under its volume's exclusive
//!   lock, and the readers that waited read again: they see the last
//!   durable state, never the failed write. Writes stay refused until the
//!   store is reopened (`durable`); what sled writes out of the failed
//!   write and its undo when it closes cancels out.
//!
//! Entries live for one fsync round (milliseconds). Writes that touch the
//! name table (create, rename, delete) are applied while holding the list,
//! so for them the list order is the order in sled, which is what undoing
//! newest first needs where two of them touch one name (a delete, then a
//! create of the same name). Commits and quota changes only touch keys of
//! their own volume, whose exclusive lock orders them.

use std::sync::{MutexGuard, PoisonError};

use sled::IVec;
use sled::Transactional;
use sled::transaction::TransactionError;

use super::{EmbeddedStore, lock};
use crate::storage::volume::VolumeError;

/// Which of the volume trees a key is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UndoTree {
    Volumes,
    Nodes,
    Log,
    History,
}

/// One key as it was before a write: `old` is put back (or the key
/// removed when `None`) to undo it.
#[derive(Debug, Clone)]
pub(super) struct UndoOp {
    pub tree: UndoTree,
    pub key: IVec,
    pub old: Option<IVec>,
}

/// A volume write applied to sled and not yet known durable.
#[derive(Debug)]
pub(super) struct Unconfirmed {
    seq: u64,
    /// The volume id whose exclusive lock orders it.
    volume: u64,
    /// Whether it changes which names exist (create, rename, delete).
    names: bool,
    /// The barrier ticket covering it; `None` while it is being applied.
    ticket: Option<u64>,
    undo: Vec<UndoOp>,
}

/// The unconfirmed volume writes, in the order they were registered.
#[derive(Debug, Default)]
pub(super) struct Visibility {
    list: std::sync::Mutex<Vec<Unconfirmed>>,
    next_seq: std::sync::atomic::AtomicU64,
}

/// What a read depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// One volume's head and nodes (found by its name).
    Volume(u64),
    /// Which names exist (a read that found no such volume).
    Names,
    /// Every volume (a listing).
    All,
    /// Nothing stored (a refused argument).
    Nothing,
}

impl Scope {
    fn covers(self, u: &Unconfirmed) -> bool {
        match self {
            Scope::Volume(id) => u.volume == id,
            Scope::Names => u.names,
            Scope::All => true,
            Scope::Nothing => false,
        }
    }
}

/// A write applied and registered, to be waited for with
/// [`EmbeddedStore::confirm`] once the volume's lock is let go.
#[derive(Debug, Clone, Copy)]
#[must_use = "a published write must be confirmed"]
pub(super) struct Published {
    ticket: u64,
}

/// The ticket of a write that wrote nothing: no wait.
const NOTHING: u64 = 0;

fn sync_err(e: std::io::Error) -> VolumeError {
    let msg = format!("making the change durable: {e}");
    if crate::storage::disk::is_disk_full(&e) {
        VolumeError::DiskFull(msg)
    } else {
        VolumeError::Io(msg)
    }
}

impl EmbeddedStore {
    fn unconfirmed(&self) -> MutexGuard<'_, Vec<Unconfirmed>> {
        lock(&self.vol().visible.list)
    }

    /// Applies a write of volume `volume` (the caller holds its exclusive
    /// lock): `apply` makes the sled transaction and returns what undoes
    /// it. Refused before anything changes once the barrier is poisoned.
    /// `names`: the write changes which names exist.
    pub(super) fn publish<R>(
        &self,
        volume: u64,
        names: bool,
        apply: impl FnOnce() -> Result<(R, Vec<UndoOp>), VolumeError>,
    ) -> Result<(R, Published), VolumeError> {
        self.durability.healthy().map_err(sync_err)?;
        // Taken before the list, so a backup that holds it never waits on
        // a writer holding the list.
        let _gate = self
            .vol()
            .writes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let seq = self
            .vol()
            .visible
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut list = self.unconfirmed();
        list.push(Unconfirmed {
            seq,
            volume,
            names,
            ticket: None,
            undo: Vec::new(),
        });
        // A name write keeps the list while it applies (see the module
        // docs); a commit lets readers of other volumes go on.
        let held = if names {
            Some(list)
        } else {
            drop(list);
            None
        };
        let applied = apply();
        let mut list = held.unwrap_or_else(|| self.unconfirmed());
        let Some(at) = list.iter().position(|u| u.seq == seq) else {
            return Err(VolumeError::Io(
                "a volume write lost its registration (a bug)".into(),
            ));
        };
        let (out, undo) = match applied {
            Ok(v) => v,
            Err(e) => {
                list.remove(at);
                return Err(e);
            }
        };
        if undo.is_empty() {
            // Nothing was written (a create of a name that exists).
            list.remove(at);
            return Ok((out, Published { ticket: NOTHING }));
        }
        // Taken after the write is in sled: the round that covers the
        // ticket flushes it.
        // An error is the barrier's lock poisoned (a panic in a round): no
        // wait can succeed then, so readers fail rather than see the write.
        let ticket = self.durability.ticket().unwrap_or(u64::MAX);
        if let Some(u) = list.get_mut(at) {
            u.ticket = Some(ticket);
            u.undo = undo;
        }
        Ok((out, Published { ticket }))
    }

    /// Waits until a published write is durable (outside the volume's
    /// lock, so concurrent writers share the round). On failure the writes
    /// the barrier did not cover are undone and the error returned.
    pub(super) fn confirm(&self, p: Published) -> Result<(), VolumeError> {
        if p.ticket == NOTHING {
            return Ok(());
        }
        match self.durability.wait(p.ticket) {
            Ok(()) => {
                self.drop_durable(p.ticket);
                Ok(())
            }
            Err(e) => {
                if self.durability.is_poisoned() {
                    self.undo_unconfirmed()?;
                }
                Err(sync_err(e))
            }
        }
    }

    /// Forgets the entries a successful wait for `ticket` made durable.
    fn drop_durable(&self, ticket: u64) {
        self.unconfirmed()
            .retain(|u| !matches!(u.ticket, Some(t) if t <= ticket));
    }

    /// Runs `read` and answers with it only once everything it read is
    /// durable; `read` returns its result and what it depends on. A read
    /// that saw a write whose round failed is made again, after that
    /// write was undone.
    pub(super) fn visible<R>(
        &self,
        mut read: impl FnMut() -> (Scope, Result<R, VolumeError>),
    ) -> Result<R, VolumeError> {
        // A write undone makes the read go again; a third attempt would
        // mean writes keep landing on a poisoned barrier, which `publish`
        // refuses, so two rounds are plenty.
        for _ in 0..3 {
            let (scope, out) = read();
            if self.settle(scope)? {
                return out;
            }
        }
        Err(VolumeError::Unavailable(
            "volume writes keep failing to become durable; reopen the store".into(),
        ))
    }

    /// Waits for the unconfirmed writes `scope` depends on. `Ok(true)`: what
    /// was read is durable; `Ok(false)`: a failed round undid writes, read
    /// again.
    fn settle(&self, scope: Scope) -> Result<bool, VolumeError> {
        if scope == Scope::Nothing {
            return Ok(true);
        }
        loop {
            let mut newest = None;
            let mut applying = None;
            for u in self.unconfirmed().iter().filter(|u| scope.covers(u)) {
                match u.ticket {
                    Some(t) => newest = newest.max(Some(t)),
                    None => {
                        applying = Some(u.volume);
                        break;
                    }
                }
            }
            if let Some(volume) = applying {
                // Being applied under that volume's exclusive lock: once it
                // can be read-locked, the write has its ticket.
                let l = self.vol().lock_for(volume);
                drop(l.read().unwrap_or_else(PoisonError::into_inner));
                continue;
            }
            let Some(ticket) = newest else {
                return Ok(true);
            };
            return match self.durability.wait(ticket) {
                Ok(()) => {
                    self.drop_durable(ticket);
                    Ok(true)
                }
                Err(_) if self.durability.is_poisoned() => {
                    self.undo_unconfirmed()?;
                    Ok(false)
                }
                Err(e) => Err(sync_err(e)),
            };
        }
    }

    /// Undoes every registered write no successful round covered, newest
    /// first (the barrier is poisoned: none of them can become durable in
    /// this process). Each is undone under its volume's exclusive lock, so
    /// no commit plans against a state being taken back.
    fn undo_unconfirmed(&self) -> Result<(), VolumeError> {
        loop {
            let (seq, volume) = {
                let mut list = self.unconfirmed();
                list.retain(|u| !matches!(u.ticket, Some(t) if self.durability.covered(t)));
                match list.last() {
                    None => return Ok(()),
                    Some(u) => (u.seq, u.volume),
                }
            };
            let l = self.vol().lock_for(volume);
            let _excl = l.write().unwrap_or_else(PoisonError::into_inner);
            let mut list = self.unconfirmed();
            let Some(u) = list.last().filter(|u| u.seq == seq) else {
                // A newer write registered meanwhile: it goes first.
                continue;
            };
            match u.ticket {
                // Still being applied: impossible under the volume's lock
                // for a commit, and a name write holds the list. Let it
                // finish rather than undo half of it.
                None => {
                    drop((list, _excl));
                    std::thread::yield_now();
                    continue;
                }
                Some(t) if self.durability.covered(t) => {
                    list.pop();
                    continue;
                }
                Some(_) => {}
            }
            self.apply_undo(&u.undo)?;
            list.pop();
            lock(&self.vol().snapshots).forget(volume);
        }
    }

    fn apply_undo(&self, undo: &[UndoOp]) -> Result<(), VolumeError> {
        let vol = self.vol();
        (&vol.volumes, &vol.nodes, &vol.log, &vol.history)
            .transaction(|(tv, tn, tl, th)| {
                for op in undo.iter().rev() {
                    let tree = match op.tree {
                        UndoTree::Volumes => tv,
                        UndoTree::Nodes => tn,
                        UndoTree::Log => tl,
                        UndoTree::History => th,
                    };
                    match &op.old {
                        Some(v) => tree.insert(op.key.clone(), v.clone())?,
                        None => tree.remove(op.key.clone())?,
                    };
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<VolumeError>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => {
                    VolumeError::Io(format!("undoing a volume write that is not durable: {e}"))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::storage::disk::{FaultError, FaultMode, FaultPlan, OpKind, StorageIo};
    use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore};
    use crate::storage::volume::{Change, Node, NodeKind, VolumeError, VolumeStore};

    fn names(s: &EmbeddedStore) -> Vec<String> {
        let mut n: Vec<String> = VolumeStore::list(s)
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        n.sort();
        n
    }

    /// Every kind of volume write whose fsync fails is never seen, by any
    /// read, and leaves the last durable state: a commit, a create, a
    /// rename, a delete and a quota change.
    #[test]
    fn writes_whose_fsync_failed_are_undone() {
        type Write = fn(&EmbeddedStore) -> Result<(), VolumeError>;
        let writes: [(&str, Write); 5] = [
            ("commit", |s| {
                let blob = s.put_blob(b"new").unwrap();
                let node = Node {
                    kind: NodeKind::File,
                    blob: Some(blob),
                    size: 3,
                    mtime_ms: 0,
                    mode: 0o644,
                    target: None,
                };
                s.commit(
                    "v",
                    &[Change::Put {
                        path: "new".into(),
                        node,
                    }],
                )
                .map(drop)
            }),
            ("create", |s| s.create_with("w", Some(5)).map(drop)),
            ("rename", |s| s.rename("v", "w")),
            ("delete", |s| s.delete("v")),
            ("quota", |s| s.set_max_bytes("v", Some(1)).map(drop)),
        ];
        for (what, write) in writes {
            let dir = tempfile::tempdir().unwrap();
            let io = StorageIo::faulty(FaultPlan::default());
            let s = EmbeddedStore::open(
                dir.path(),
                EmbeddedOptions {
                    io: io.clone(),
                    ..EmbeddedOptions::default()
                },
            )
            .unwrap();
            s.create("v").unwrap();
            let blob = s.put_blob(b"old").unwrap();
            let node = Node {
                kind: NodeKind::File,
                blob: Some(blob),
                size: 3,
                mtime_ms: 0,
                mode: 0o644,
                target: None,
            };
            s.commit(
                "v",
                &[Change::Put {
                    path: "old".into(),
                    node,
                }],
            )
            .unwrap();
            let before = (names(&s), s.snapshot("v").unwrap(), s.info("v").unwrap());
            // Blobs are put before the fault: only sled's fsync fails.
            if what == "commit" {
                s.put_blob(b"new").unwrap();
            }
            io.reset_counts();
            io.set_faults(FaultPlan::single(
                OpKind::Fsync,
                1,
                FaultMode::Forever,
                FaultError::Eio,
            ));
            let e = write(&s).expect_err(what);
            assert!(e.to_string().contains("injected fault"), "{what}: {e}");
            let after = (names(&s), s.snapshot("v").unwrap(), s.info("v").unwrap());
            assert_eq!(
                after, before,
                "{what}: a write whose fsync failed is visible"
            );
            assert!(
                matches!(s.info("w"), Err(VolumeError::NotFound(_))),
                "{what}"
            );
            assert_eq!(s.node("v", "new").unwrap(), None, "{what}");
            assert!(s.vol().visible.list.lock().unwrap().is_empty(), "{what}");
            // Refused from now on, before anything is applied.
            let again = write(&s).expect_err(what);
            assert!(
                again.to_string().contains("reopen the store"),
                "{what}: {again}"
            );
            assert_eq!(names(&s), before.0, "{what}");
        }
    }
}
