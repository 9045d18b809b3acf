//! The volume mounts alive in this process, per store. The service asks it
//! before deleting or renaming a volume (a mounted volume is refused unless
//! the deletion is forced), and a garbage collection asks it which blobs to
//! keep: a lazy mount links a file's blob only when the guest first reaches
//! the file, so every blob of every snapshot a live mount was based on must
//! stay until the mount ends, whatever the volume's head says by then.
//!
//! One process owns an embedded store's data at a time (the data dir's lock;
//! other `vessel` processes forward to its owner), so the mounts registered
//! here are all the mounts of that store.
// TODO(issue 18, item 3): on the shared backend several hosts mount the same
// volumes; pins belong in the store so that every host's gc sees them.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::storage::blobs::BlobId;

/// Live mounts by registration id.
static LIVE: Mutex<BTreeMap<u64, Arc<Entry>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Locks a registry mutex, ignoring poisoning: the maps and lists behind
/// them stay valid whatever a panicking holder did.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Entry {
    /// [`VolumeStore::location`](crate::storage::volume::VolumeStore::location)
    /// of the store the volume lives in.
    location: String,
    volume: String,
    pins: Mutex<Pins>,
    /// The volume was deleted (forced) while this mount was alive.
    deleted: AtomicBool,
}

#[derive(Debug, Default)]
struct Pins {
    /// Every blob of every snapshot the mount was based on (sorted and
    /// deduplicated on each reload, so a long-lived mount's list grows with
    /// the blobs that changed, not with the reloads).
    blobs: Vec<BlobId>,
    /// A snapshot is being read whose blobs are not pinned yet.
    loading: bool,
}

/// A live mount's place in the registry; dropping it ends the registration.
#[derive(Debug)]
pub(crate) struct Registration {
    id: u64,
    entry: Arc<Entry>,
}

impl Registration {
    /// Registers a mount of `volume` in the store at `location`, as loading:
    /// call it before reading the snapshot, and [`pin`](Self::pin) its blobs
    /// after.
    pub(crate) fn new(location: String, volume: &str) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            location,
            volume: volume.to_owned(),
            pins: Mutex::new(Pins {
                blobs: Vec::new(),
                loading: true,
            }),
            deleted: AtomicBool::new(false),
        });
        lock(&LIVE).insert(id, entry.clone());
        Registration { id, entry }
    }

    /// Marks the start of reading a new snapshot (a reload).
    pub(crate) fn loading(&self) {
        lock(&self.entry.pins).loading = true;
    }

    /// Pins `blobs` (the snapshot just read) and ends loading.
    pub(crate) fn pin(&self, blobs: impl Iterator<Item = BlobId>) {
        let mut pins = lock(&self.entry.pins);
        let before = pins.blobs.len();
        pins.blobs.extend(blobs);
        if before > 0 {
            pins.blobs.sort_unstable();
            pins.blobs.dedup();
        }
        pins.loading = false;
    }

    /// Whether the volume was deleted (forced) while mounted.
    pub(crate) fn deleted(&self) -> bool {
        self.entry.deleted.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&LIVE).remove(&self.id);
    }
}

/// Why [`guard_volume`] refused.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "volume `{volume}` is mounted by {mounts} running container(s) in this process; \
         stop them first{hint}"
    )]
    Mounted {
        volume: String,
        mounts: usize,
        /// How to go ahead anyway, if the operation allows it.
        hint: &'static str,
    },
}

impl Entry {
    /// A live mount of `volume` in the store at `location`. (A mount whose
    /// volume was deleted under it mounts nothing that has that name now.)
    fn mounts(&self, location: &str, volume: &str) -> bool {
        self.location == location && self.volume == volume && !self.deleted.load(Ordering::Acquire)
    }
}

/// How many live mounts of `volume` the store at `location` has.
pub fn mounts_of(location: &str, volume: &str) -> usize {
    lock(&LIVE)
        .values()
        .filter(|e| e.mounts(location, volume))
        .count()
}

/// What [`guard_volume`] does about live mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMounted {
    /// Refuse.
    Refuse,
    /// Refuse, and say that `--force` would go ahead.
    RefuseUnlessForced,
    /// Go ahead; when `op` succeeds the mounts learn that their volume is
    /// gone (their commits and reloads fail from then on).
    Delete,
}

/// Runs `op` (a deletion or rename of `volume`) unless live mounts of it
/// forbid: the registry stays locked while `op` runs, so no mount of the
/// volume starts meanwhile.
pub fn guard_volume<T, E: From<LiveError>>(
    location: &str,
    volume: &str,
    if_mounted: IfMounted,
    op: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let live = lock(&LIVE);
    let mounts: Vec<&Arc<Entry>> = live
        .values()
        .filter(|e| e.mounts(location, volume))
        .collect();
    if !mounts.is_empty() {
        let hint = match if_mounted {
            IfMounted::Refuse => "",
            IfMounted::RefuseUnlessForced => {
                " (or pass --force: those containers keep reading their snapshot, but cannot commit or reload)"
            }
            IfMounted::Delete => "",
        };
        if if_mounted != IfMounted::Delete {
            return Err(LiveError::Mounted {
                volume: volume.to_owned(),
                mounts: mounts.len(),
                hint,
            }
            .into());
        }
    }
    let out = op()?;
    for m in mounts {
        m.deleted.store(true, Ordering::Release);
    }
    Ok(out)
}

/// The blobs live mounts of one store may still link, for a garbage
/// collection of that store. The set is taken on the first question, which
/// a collection asks after it has fixed the set of referenced blobs (and
/// while no commit can land); a mount still reading its snapshot then
/// makes every blob count as pinned, since its snapshot may name blobs no
/// head names any more.
#[derive(Debug)]
pub struct Pinned {
    location: String,
    set: OnceLock<Option<HashSet<BlobId>>>,
}

impl Pinned {
    pub fn new(location: String) -> Self {
        Pinned {
            location,
            set: OnceLock::new(),
        }
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        let set = self.set.get_or_init(|| {
            let live = lock(&LIVE);
            let mut set = HashSet::new();
            for e in live.values().filter(|e| e.location == self.location) {
                let pins = lock(&e.pins);
                if pins.loading {
                    return None;
                }
                set.extend(pins.blobs.iter().copied());
            }
            Some(set)
        });
        match set {
            Some(s) => s.contains(id),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(b: u8) -> BlobId {
        BlobId([b; 32])
    }

    #[test]
    fn registrations_guard_and_pin_per_store() {
        let loc = "test:live-registrations";
        let other = "test:live-registrations-other";
        let a = Registration::new(loc.into(), "v");
        // Loading: every blob counts as pinned.
        assert!(Pinned::new(loc.into()).contains(&id(9)));
        a.pin([id(1), id(2)].into_iter());
        let pinned = Pinned::new(loc.into());
        assert!(pinned.contains(&id(1)) && !pinned.contains(&id(9)));
        assert!(!Pinned::new(other.into()).contains(&id(1)));
        assert_eq!(mounts_of(loc, "v"), 1);
        assert_eq!(mounts_of(other, "v"), 0);

        let refused: Result<(), LiveError> =
            guard_volume(loc, "v", IfMounted::RefuseUnlessForced, || Ok(()));
        let msg = refused.unwrap_err().to_string();
        assert!(
            msg.contains("mounted by 1") && msg.contains("--force"),
            "{msg}"
        );
        // Another store, or another volume, is not affected.
        guard_volume::<_, LiveError>(other, "v", IfMounted::Refuse, || Ok(())).unwrap();
        guard_volume::<_, LiveError>(loc, "w", IfMounted::Refuse, || Ok(())).unwrap();
        // A failed forced deletion tells the mounts nothing.
        let failed: Result<(), LiveError> = guard_volume(loc, "v", IfMounted::Delete, || {
            Err(LiveError::Mounted {
                volume: "v".into(),
                mounts: 0,
                hint: "",
            })
        });
        assert!(failed.is_err());
        assert!(!a.deleted());
        guard_volume::<_, LiveError>(loc, "v", IfMounted::Delete, || Ok(())).unwrap();
        assert!(a.deleted());
        // A volume created under the name later is not mounted by `a`.
        assert_eq!(mounts_of(loc, "v"), 0);
        guard_volume::<_, LiveError>(loc, "v", IfMounted::Refuse, || Ok(())).unwrap();

        // A reload keeps the old pins and adds the new ones.
        a.loading();
        a.pin([id(3), id(1)].into_iter());
        let pinned = Pinned::new(loc.into());
        assert!(pinned.contains(&id(2)) && pinned.contains(&id(3)));
        drop(a);
        assert_eq!(mounts_of(loc, "v"), 0);
        assert!(!Pinned::new(loc.into()).contains(&id(1)));
    }
}
