//! A mount's way back into its volume: commit (collecting what the guest
//! changed in the working tree, against the snapshot it started from) and
//! reload (moving the untouched part of the tree to the volume's head).

use super::*;

impl Mount {
    pub(super) fn check_live(&self) -> Result<(), MountError> {
        if self.live.deleted() {
            return Err(MountError::Deleted {
                volume: self.volume.clone(),
                guest: self.guest.clone(),
            });
        }
        Ok(())
    }

    /// Publishes the dirty paths, except those in `skip` (files open for
    /// writing during a background commit: publishing them could tear),
    /// under the mount's conflict policy.
    ///
    /// This is the host's commit (background, final): under
    /// [`Conflicts::Fail`] it checks each path against the version this
    /// container read it at, never against a conflict report's head, so a
    /// change the guest was told conflicts and did not commit again is
    /// never published behind its back.
    pub fn commit(&mut self, skip: &BTreeSet<String>) -> Result<CommitInfo, MountError> {
        self.commit_as(skip, self.conflicts, false, false)
    }

    /// The guest's own commit (`commit`, `commit-with`, `reload`) under
    /// `policy`. A path a conflict was reported for counts as read at the
    /// head of that report: the guest merged it, or chose to overwrite.
    /// `tell`: the caller hands this commit's conflict to the guest, with
    /// its paths (`commit-with`), so they count as read at its head next
    /// time; a plain `commit` only says `precondition-failed`.
    pub fn commit_by_guest(
        &mut self,
        policy: Conflicts,
        tell: bool,
    ) -> Result<CommitInfo, MountError> {
        self.commit_as(&BTreeSet::new(), policy, true, tell)
    }

    fn commit_as(
        &mut self,
        skip: &BTreeSet<String>,
        policy: Conflicts,
        by_guest: bool,
        tell: bool,
    ) -> Result<CommitInfo, MountError> {
        if self.read_only {
            return Err(MountError::ReadOnly {
                guest: self.guest.clone(),
            });
        }
        self.check_live()?;
        let guest = self.guest.clone();
        let err = io_err(&guest);
        let dirty: Vec<String> = self
            .dirty
            .iter()
            .filter(|p| !skip.contains(*p))
            .cloned()
            .collect();
        if dirty.is_empty() {
            return Ok(CommitInfo {
                version: self.version,
                changed: 0,
                removed: 0,
            });
        }
        let mut changes: Vec<Change> = Vec::new();
        let mut seen = BTreeSet::new();
        for path in &dirty {
            self.collect(path, &mut changes, &mut seen).map_err(&err)?;
        }
        let mut options = CommitOptions::default();
        if policy == Conflicts::Fail {
            options.unchanged_since = self.checks(&changes, by_guest);
        }
        let info = match self.store.commit_with(&self.volume, &changes, &options) {
            Err(VolumeError::Conflict { paths, .. }) => {
                let head = self.store.info(&self.volume)?.version;
                if tell {
                    for p in &paths {
                        self.told.insert(p.clone(), head);
                    }
                }
                return Err(MountError::Conflict {
                    volume: self.volume.clone(),
                    guest: self.guest.clone(),
                    paths,
                    head,
                });
            }
            other => other?,
        };
        for change in &changes {
            let path = match change {
                Change::Put { path, .. } | Change::Remove { path } => path,
            };
            self.read_at.insert(path.clone(), info.version);
            self.told.remove(path);
        }
        for change in changes {
            match change {
                Change::Put { path, node } => match self.base.get_mut(&path) {
                    Some(e) => {
                        e.node = node;
                        e.placed = true;
                    }
                    None => {
                        self.base.insert(
                            path,
                            BaseEntry {
                                node,
                                placed: true,
                                // New here: all its children come from the
                                // working tree.
                                complete: true,
                            },
                        );
                    }
                },
                Change::Remove { path } => {
                    // The path and its subtree (not its siblings that sort
                    // in between, like `a-b` between `a` and `a/c`).
                    let prefix = format!("{path}/");
                    let gone: Vec<String> = self
                        .base
                        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                        .take_while(|(p, _)| p.starts_with(&prefix))
                        .map(|(p, _)| p.clone())
                        .collect();
                    self.base.remove(&path);
                    for p in gone {
                        self.base.remove(&p);
                    }
                }
            }
        }
        for path in dirty {
            self.renamed_in.remove(&path);
            self.dirty.remove(&path);
        }
        self.version = info.version;
        Ok(info)
    }

    /// What a commit of `changes` under [`Conflicts::Fail`] checks: each
    /// path with the version this container read it at. A directory that
    /// stays a directory (its times or mode changed) is not checked:
    /// others adding files inside it do not conflict with that.
    fn checks(&self, changes: &[Change], by_guest: bool) -> Vec<(String, u64)> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Put { path, node }
                    if node.kind == NodeKind::Dir
                        && self.base.get(path).map(|e| e.node.kind) == Some(NodeKind::Dir) =>
                {
                    None
                }
                Change::Put { path, .. } | Change::Remove { path } => {
                    let mut at = self.read_at.get(path).copied().unwrap_or(self.seen);
                    if by_guest && let Some(told) = self.told.get(path) {
                        at = at.max(*told);
                    }
                    Some((path.clone(), at))
                }
            })
            .collect()
    }

    /// Adds the changes for one dirty path (and, for a directory that is not
    /// in the base or was renamed in, its whole subtree; and its ancestors
    /// that are not in the base, first).
    ///
    /// A work list, not recursion: a tree may be thousands of levels deep,
    /// and commits run on the guest's fiber stack.
    pub(super) fn collect(
        &self,
        path: &str,
        changes: &mut Vec<Change>,
        seen: &mut BTreeSet<String>,
    ) -> io::Result<()> {
        let mut todo = vec![path.to_owned()];
        while let Some(path) = todo.pop() {
            if path.is_empty() || seen.contains(&path) {
                continue;
            }
            let Some(meta) = self.present(&path)? else {
                seen.insert(path.clone());
                changes.push(Change::Remove { path });
                continue;
            };
            // A parent that is new here goes first (it may walk its
            // children, this path among them).
            if let Some(parent) = parent_of(&path)
                && !self.base.contains_key(parent)
                && !seen.contains(parent)
            {
                let parent = parent.to_owned();
                todo.push(path);
                todo.push(parent);
                continue;
            }
            seen.insert(path.clone());
            let node = self.node_of(&path, &meta)?;
            let base_dir = self.base.get(&path).map(|e| e.node.kind) == Some(NodeKind::Dir);
            let renamed_in = node.kind == NodeKind::Dir && self.renamed_in.contains(&path);
            // A directory the base already had keeps its children as they
            // are; a new one (created, or renamed in) brings its whole
            // subtree, and one renamed over a base directory replaces that
            // one's.
            let walk = node.kind == NodeKind::Dir && (!base_dir || renamed_in);
            if renamed_in && base_dir {
                changes.push(Change::Remove { path: path.clone() });
            }
            changes.push(Change::Put {
                path: path.clone(),
                node,
            });
            if walk {
                let mut children: Vec<String> = Vec::new();
                for entry in self.root.read_dir(&path)? {
                    let name = entry?.file_name();
                    children.push(format!("{path}/{}", name.to_string_lossy()));
                }
                // Reversed onto the stack: the first in order comes next.
                children.sort_unstable_by(|a, b| b.cmp(a));
                todo.extend(children);
            }
        }
        Ok(())
    }

    /// The metadata of physical path `path` of the working tree, or `None`
    /// when nothing is there: not found, or an ancestor that is no longer a
    /// directory (the guest replaced it with a file or a symlink after
    /// writing below it), which must not fail the whole commit.
    pub(super) fn present(&self, path: &str) -> io::Result<Option<cap_std::fs::Metadata>> {
        match self.root.symlink_metadata(path) {
            Ok(m) => Ok(Some(m)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => {
                // cap-std refuses a walk through a symlink that leaves the
                // working tree: then an ancestor is a symlink, and the
                // path itself is gone.
                for a in crate::storage::volume::ancestors(path) {
                    if !self.root.symlink_metadata(a).is_ok_and(|m| m.is_dir()) {
                        return Ok(None);
                    }
                }
                Err(e)
            }
        }
    }

    /// The node to store for `path`, whose metadata is `meta`.
    pub(super) fn node_of(&self, path: &str, meta: &cap_std::fs::Metadata) -> io::Result<Node> {
        let mtime_ms = u64::try_from(meta.mtime())
            .unwrap_or(0)
            .saturating_mul(1000)
            .saturating_add(u64::try_from(meta.mtime_nsec() / 1_000_000).unwrap_or(0));
        let mode = meta.mode() & 0o7777;
        Ok(if meta.is_dir() {
            Node {
                kind: NodeKind::Dir,
                blob: None,
                size: 0,
                mtime_ms,
                mode,
                target: None,
            }
        } else if meta.file_type().is_symlink() {
            let target = self.root.read_link_contents(path)?;
            Node {
                kind: NodeKind::Symlink,
                blob: None,
                size: 0,
                mtime_ms,
                mode,
                target: Some(target.to_string_lossy().into_owned()),
            }
        } else {
            let blob = match self.blob_inodes.get(&(meta.dev(), meta.ino())) {
                Some(b) => *b,
                None => {
                    // Opened through the working tree's capability: no
                    // symlink leads it out, and the path need not fit the
                    // host's PATH_MAX once the working tree's own path is
                    // in front of it.
                    let mut file = self.root.open(path)?.into_std();
                    self.store
                        .put_blob_reader(&mut file)
                        .map_err(|e| io::Error::other(e.to_string()))?
                        .0
                }
            };
            Node {
                kind: NodeKind::File,
                blob: Some(blob),
                size: meta.len(),
                mtime_ms,
                mode,
                target: None,
            }
        })
    }

    /// The length of the longest physical path at or under `rel` in the
    /// working tree (a work list: trees can be deep).
    pub(crate) fn longest_below(&self, rel: &str) -> io::Result<usize> {
        let mut longest = rel.len();
        let mut todo = vec![rel.to_owned()];
        while let Some(dir) = todo.pop() {
            if !self.root.symlink_metadata(dot(&dir))?.is_dir() {
                continue;
            }
            for entry in self.root.read_dir(dot(&dir))? {
                let entry = entry?;
                let name = entry.file_name();
                let child = if dir.is_empty() {
                    name.to_string_lossy().into_owned()
                } else {
                    format!("{dir}/{}", name.to_string_lossy())
                };
                longest = longest.max(child.len());
                if entry.file_type()?.is_dir() {
                    todo.push(child);
                }
            }
        }
        Ok(longest)
    }

    /// Brings the mount to the volume's head. The caller has checked that
    /// no files are open and has committed the dirty paths. Only placed
    /// paths that differ are touched in the working tree; the rest of the
    /// new snapshot is placed lazily like a fresh mount's.
    pub fn reload(&mut self) -> Result<u64, MountError> {
        self.check_live()?;
        // A mount of an older version stays on it: nothing to load.
        if self.pinned.is_some() {
            return Ok(self.version);
        }
        // Nothing was committed since this mount's snapshot, by it or by
        // others: the working tree shows the head already (a warm
        // container's reload before each call is then one metadata read,
        // not a 10,000-node compare). After its own commits the mount
        // cannot tell whether others' landed in between, so it reloads.
        if self.dirty.is_empty()
            && self.seen == self.version
            && self.store.info(&self.volume)?.version == self.version
        {
            return Ok(self.version);
        }
        self.live.loading();
        let snapshot: Snapshot = match self.store.snapshot(&self.volume) {
            Ok(s) => s,
            Err(e) => {
                self.live.pin(std::iter::empty());
                return Err(e.into());
            }
        };
        self.live
            .pin(snapshot.nodes.iter().filter_map(|(_, n)| n.blob));
        let guest = self.guest.clone();
        let err = io_err(&guest);
        let head: BTreeMap<String, Node> = snapshot.nodes.into_iter().collect();
        // Placed paths the head changes or drops leave the working tree.
        // Everything under a directory that goes goes too (a directory
        // only differs from the head's when the head has none there), so
        // the outermost one is removed with its subtree and the paths
        // under it are skipped: one removal, not one per level of a deep
        // tree.
        let mut gone: Vec<String> = Vec::new();
        for (p, e) in &self.base {
            if !e.placed || head.get(p).is_some_and(|h| same_entry(h, &e.node)) {
                continue;
            }
            let under_last = gone.last().is_some_and(|g| {
                p.strip_prefix(g.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            });
            if !under_last {
                gone.push(p.clone());
            }
        }
        for path in gone {
            match self.root.symlink_metadata(&path) {
                Ok(m) if m.is_dir() => self.root.remove_dir_all(&path),
                Ok(_) => self.root.remove_file(&path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
            .map_err(&err)?;
        }
        let old = std::mem::take(&mut self.base);
        self.base = head
            .into_iter()
            .map(|(path, node)| {
                let placed = old
                    .get(&path)
                    .is_some_and(|e| e.placed && same_entry(&e.node, &node));
                (
                    path,
                    BaseEntry {
                        node,
                        placed,
                        complete: false,
                    },
                )
            })
            .collect();
        self.root_complete = false;
        self.inodes = self.base.len() as u64;
        self.version = snapshot.version;
        self.seen = snapshot.version;
        self.read_at.clear();
        self.told.clear();
        self.dirty.clear();
        self.renamed_in.clear();
        Ok(self.version)
    }
}
