//! The live mounts of a store's volumes, held by the store (every handle
//! on the same store shares them; nothing is process-global). A deletion
//! or rename of a volume asks them first (a mounted volume is refused
//! unless the deletion is forced), and a garbage collection asks them which
//! blobs to keep: a lazy mount links a file's blob only when the guest
//! first reaches the file, so every blob of every snapshot a live mount was
//! based on must stay until the mount ends, whatever the volume's head
//! says by then.
//!
//! The registry here holds this process's mounts, with their exact blobs.
//! One process owns an embedded store at a time (the data dir's lock), so
//! for it they are all the mounts. The shared backend records each mount
//! in the database as well (see `storage::remote`), so the other hosts'
//! collections and deletions see it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::storage::blobs::BlobId;

/// The live mounts of one store in this process.
#[derive(Debug, Default)]
pub struct Mounts {
    /// Live mounts by registration id.
    live: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>>,
    next_id: AtomicU64,
    idle: IdleHolders,
}

/// What holds mounts it can give up on request: containers kept warm
/// between calls, with no call running. A deletion or rename asks them to
/// let go of a volume's mounts before it counts the mounts in its way, so
/// a container that merely waits for a call does not block it.
pub trait IdleMounts: Send + Sync {
    /// Ends the idle containers that mount `volume`.
    fn release(&self, volume: &str);
}

#[derive(Default)]
struct IdleHolders(Mutex<Vec<std::sync::Weak<dyn IdleMounts>>>);

impl std::fmt::Debug for IdleHolders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IdleHolders")
            .field(&lock(&self.0).len())
            .finish()
    }
}

/// Locks a registry mutex, ignoring poisoning: the maps and lists behind
/// them stay valid whatever a panicking holder did.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Entry {
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

/// A live mount's place in the registry; dropping it ends the registration
/// (and, on the shared backend, its record: see [`Registration::on_drop`]).
pub struct Registration {
    id: u64,
    entry: Arc<Entry>,
    live: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>>,
    /// Run when the registration ends (the shared backend removes the
    /// mount's record).
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("volume", &self.entry.volume)
            .finish_non_exhaustive()
    }
}

impl Mounts {
    /// Registers a mount of `volume`, as loading: call it before reading
    /// the snapshot, and [`pin`](Registration::pin) its blobs after.
    pub fn register(&self, volume: &str) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            volume: volume.to_owned(),
            pins: Mutex::new(Pins {
                blobs: Vec::new(),
                loading: true,
            }),
            deleted: AtomicBool::new(false),
        });
        lock(&self.live).insert(id, entry.clone());
        Registration {
            id,
            entry,
            live: self.live.clone(),
            release: None,
        }
    }

    /// Adds a holder of idle mounts; it is forgotten once dropped.
    pub fn add_idle_holder(&self, holder: std::sync::Weak<dyn IdleMounts>) {
        let mut holders = lock(&self.idle.0);
        holders.retain(|h| h.strong_count() > 0);
        holders.push(holder);
    }

    /// Asks the holders of idle mounts to let go of `volume`'s.
    pub fn release_idle(&self, volume: &str) {
        let holders: Vec<_> = lock(&self.idle.0)
            .iter()
            .filter_map(|h| h.upgrade())
            .collect();
        for h in holders {
            h.release(volume);
        }
    }

    /// How many live mounts of `volume` this process has.
    pub fn count(&self, volume: &str) -> usize {
        lock(&self.live)
            .values()
            .filter(|e| e.mounts(volume))
            .count()
    }
}

impl Registration {
    /// Runs `f` when the registration ends.
    pub fn on_drop(&mut self, f: impl FnOnce() + Send + Sync + 'static) {
        self.release = Some(Box::new(f));
    }

    /// Marks the start of reading a new snapshot (a reload).
    pub fn loading(&self) {
        lock(&self.entry.pins).loading = true;
    }

    /// Pins `blobs` (the snapshot just read) and ends loading.
    pub fn pin(&self, blobs: impl Iterator<Item = BlobId>) {
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
    pub fn deleted(&self) -> bool {
        self.entry.deleted.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.live).remove(&self.id);
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// Why [`Mounts::guard`] refused.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "volume `{volume}` is mounted by {mounts} running container(s) {place}; \
         stop them first{hint}"
    )]
    Mounted {
        volume: String,
        mounts: usize,
        /// Where: "in this process", or "on this and other hosts".
        place: &'static str,
        /// How to go ahead anyway, if the operation allows it.
        hint: &'static str,
    },
}

impl Entry {
    /// A live mount of `volume`. (A mount whose volume was deleted under it
    /// mounts nothing that has that name now.)
    fn mounts(&self, volume: &str) -> bool {
        self.volume == volume && !self.deleted.load(Ordering::Acquire)
    }
}

/// What [`Mounts::guard`] does about live mounts.
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

impl Mounts {
    /// Runs `op` (a deletion or rename of `volume`) unless live mounts of it
    /// forbid: this process's, and `elsewhere` more on other hosts. The
    /// registry stays locked while `op` runs, so no mount of the volume starts
    /// here meanwhile.
    pub fn guard<T, E: From<LiveError>>(
        &self,
        volume: &str,
        elsewhere: usize,
        if_mounted: IfMounted,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let live = lock(&self.live);
        let mounts: Vec<&Arc<Entry>> = live.values().filter(|e| e.mounts(volume)).collect();
        if !mounts.is_empty() || elsewhere > 0 {
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
                    mounts: mounts.len() + elsewhere,
                    place: if elsewhere == 0 {
                        "in this process"
                    } else {
                        "on this and other hosts"
                    },
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

    /// The blobs this process's live mounts pin, for a collection.
    pub fn pinned(&self) -> Pinned {
        Pinned {
            live: self.live.clone(),
            set: OnceLock::new(),
        }
    }
}

/// The blobs this process's live mounts of one store may still link, for a
/// garbage collection of that store. The set is taken on the first question, which
/// a collection asks after it has fixed the set of referenced blobs (and
/// while no commit can land); a mount still reading its snapshot then
/// makes every blob count as pinned, since its snapshot may name blobs no
/// head names any more.
#[derive(Debug)]
pub struct Pinned {
    live: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>>,
    set: OnceLock<Option<HashSet<BlobId>>>,
}

impl Pinned {
    pub fn contains(&self, id: &BlobId) -> bool {
        let set = self.set.get_or_init(|| {
            let live = lock(&self.live);
            let mut set = HashSet::new();
            for e in live.values() {
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
        let mounts = Mounts::default();
        let other = Mounts::default();
        let a = mounts.register("v");
        // Loading: every blob counts as pinned.
        assert!(mounts.pinned().contains(&id(9)));
        a.pin([id(1), id(2)].into_iter());
        let pinned = mounts.pinned();
        assert!(pinned.contains(&id(1)) && !pinned.contains(&id(9)));
        assert!(!other.pinned().contains(&id(1)));
        assert_eq!(mounts.count("v"), 1);
        assert_eq!(other.count("v"), 0);

        let refused: Result<(), LiveError> =
            mounts.guard("v", 0, IfMounted::RefuseUnlessForced, || Ok(()));
        let msg = refused.unwrap_err().to_string();
        assert!(
            msg.contains("mounted by 1")
                && msg.contains("in this process")
                && msg.contains("--force"),
            "{msg}"
        );
        // Mounts on other hosts count too.
        let refused: Result<(), LiveError> = other.guard("v", 2, IfMounted::Refuse, || Ok(()));
        let msg = refused.unwrap_err().to_string();
        assert!(
            msg.contains("mounted by 2") && msg.contains("other hosts"),
            "{msg}"
        );
        // Another store, or another volume, is not affected.
        other
            .guard::<_, LiveError>("v", 0, IfMounted::Refuse, || Ok(()))
            .unwrap();
        mounts
            .guard::<_, LiveError>("w", 0, IfMounted::Refuse, || Ok(()))
            .unwrap();
        // A failed forced deletion tells the mounts nothing.
        let failed: Result<(), LiveError> = mounts.guard("v", 0, IfMounted::Delete, || {
            Err(LiveError::Mounted {
                volume: "v".into(),
                mounts: 0,
                place: "",
                hint: "",
            })
        });
        assert!(failed.is_err());
        assert!(!a.deleted());
        mounts
            .guard::<_, LiveError>("v", 0, IfMounted::Delete, || Ok(()))
            .unwrap();
        assert!(a.deleted());
        // A volume created under the name later is not mounted by `a`.
        assert_eq!(mounts.count("v"), 0);
        mounts
            .guard::<_, LiveError>("v", 0, IfMounted::Refuse, || Ok(()))
            .unwrap();

        // A reload keeps the old pins and adds the new ones.
        a.loading();
        a.pin([id(3), id(1)].into_iter());
        let pinned = mounts.pinned();
        assert!(pinned.contains(&id(2)) && pinned.contains(&id(3)));
        let released = Arc::new(AtomicBool::new(false));
        let mut b = mounts.register("w");
        let flag = released.clone();
        b.on_drop(move || flag.store(true, Ordering::Release));
        drop(a);
        drop(b);
        assert!(released.load(Ordering::Acquire), "the release hook ran");
        assert_eq!(mounts.count("v"), 0);
        assert!(!mounts.pinned().contains(&id(1)));
    }
}
