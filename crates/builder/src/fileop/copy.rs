//! The `Copy` action: sources resolved (wildcards, symlinks) in the source tree, the
//! destination chosen as fsutil's `prepareTargetDir` does, then a plan of what to copy
//! (filtered by `.dockerignore`, `include` and `exclude`) carried out through
//! [`Root`] handles.

use std::io;

use archive::{CleanPath, NodeKind, Root};
use graph::op::Copy;
use ignore::Matcher;
use rustix::fs::{FileType, Stat};

use super::glob::{self, rel};
use super::ids::{Mode, Owner};
use super::{Ctx, FileOpError, SourceTree, canonical, resolve_dest, show, unpack};

/// Deepest directory below a source the copier descends into.
const MAX_DEPTH: usize = 1024;

/// What decides which entries below a copied directory are copied.
struct Filter<'a> {
    /// The source tree's `.dockerignore`; takes tree-relative paths.
    ignore: Option<&'a Matcher>,
    /// `include` and `exclude` of the action; take paths relative to the source.
    include: Option<Matcher>,
    exclude: Option<Matcher>,
}

/// How copied entries are written.
struct Write {
    owner: Owner,
    /// Keep each source entry's uid and gid (no `--chown`, and a source whose
    /// owners mean something: another stage, not the build context).
    keep_owner: bool,
    mode: Option<Mode>,
    created: Option<i64>,
}

/// One entry to copy: its path below the copied source, and its `lstat`.
struct Node {
    rel: CleanPath,
    st: Stat,
}

pub(super) fn copy(dest: &Root, src: &SourceTree, c: &Copy) -> Result<(), FileOpError> {
    let ctx = Ctx {
        action: format!("copy {:?} to {:?}", c.src_path, c.dest),
        root: dest,
    };
    let tree = Root::open(&src.root).map_err(|e| ctx.fs(e))?;
    let ignore = src.exclude.as_deref();
    let matcher = |lines: &[String]| -> Result<Option<Matcher>, FileOpError> {
        if lines.is_empty() {
            return Ok(None);
        }
        Matcher::from_lines(lines)
            .map(Some)
            .map_err(|_| FileOpError::BadPattern {
                action: ctx.action.clone(),
                pattern: lines.join(", "),
            })
    };
    let filter = Filter {
        ignore,
        include: matcher(&c.include)?,
        exclude: matcher(&c.exclude)?,
    };
    let write = Write {
        owner: super::ids::owner(&ctx, c.chown.as_deref())?,
        keep_owner: c.chown.is_none() && src.keep_owner,
        mode: c.chmod.as_ref().map(|m| Mode::parse(&ctx, m)).transpose()?,
        created: c.created,
    };

    let src_path = ctx.clean(&c.src_path)?;
    let wild = c.allow_wildcard && src_path.components().any(glob::has_meta);
    let sources = if wild {
        let found = glob::resolve(&ctx, &tree, &src_path, ignore)?;
        if found.is_empty() {
            if c.allow_empty_wildcard {
                return Ok(());
            }
            return Err(FileOpError::NoMatch {
                action: ctx.action.clone(),
                pattern: c.src_path.clone(),
            });
        }
        found
    } else {
        vec![src_path]
    };
    let mut resolved = Vec::new();
    for s in &sources {
        let not_found = || FileOpError::NotFound {
            action: ctx.action.clone(),
            path: show(s),
        };
        let r = canonical(&tree, s, c.follow_symlinks).map_err(|e| ctx.fs(e))?;
        if glob::excluded(ignore, s) || glob::excluded(ignore, &r) {
            return Err(not_found());
        }
        let st = tree
            .lstat(&r)
            .map_err(|e| ctx.fs(e))?
            .ok_or_else(not_found)?;
        resolved.push((s, r, st));
    }

    let dest_is_dir =
        c.dest.ends_with('/') || c.dest.ends_with("/.") || c.dest == "." || resolved.len() > 1;
    let dest_p = resolve_dest(&ctx, &c.dest, true)?;
    if !c.create_dest_path && !dest_p.is_root() && !ctx.is_dir(&dest_p.parent())? {
        return Err(FileOpError::NoParent {
            action: ctx.action.clone(),
            path: show(&dest_p),
        });
    }
    let ensure = if dest_is_dir {
        dest_p.clone()
    } else {
        dest_p.parent()
    };
    ctx.mkdir_parents(&ensure, 0o755, write.owner, write.created)?;

    for (orig, r, st) in resolved {
        let is_dir = kind(&st) == FileType::Directory;
        if c.unpack && kind(&st) == FileType::RegularFile && unpack::is_archive(&ctx, &tree, &r)? {
            ctx.mkdir_parents(&dest_p, 0o755, write.owner, write.created)?;
            unpack::extract(&ctx, &tree, &r, &dest_p)?;
            continue;
        }
        let dest_exists = ctx.lstat(&dest_p)?.is_some();
        let dest_dir = ctx.is_dir(&dest_p)?;
        let target = match orig.file_name() {
            Some(name)
                if (!c.dir_contents_only && is_dir && dest_exists) || (!is_dir && dest_dir) =>
            {
                dest_p.join(name)
            }
            _ => dest_p.clone(),
        };
        let mut nodes = vec![Node {
            rel: CleanPath::default(),
            st,
        }];
        if is_dir {
            walk(
                &ctx,
                &tree,
                &r,
                &filter,
                &CleanPath::default(),
                0,
                &mut nodes,
            )?;
        }
        write_nodes(&ctx, &tree, &r, &target, &nodes, &write)?;
    }
    Ok(())
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// `base` with the components of `rel` appended.
fn join(base: &CleanPath, rel: &CleanPath) -> CleanPath {
    rel.components().fold(base.clone(), |p, c| p.join(c))
}

/// Append the entries below `top`/`dir` that the filter keeps, parents before
/// children. A directory that is itself filtered out is kept only when something
/// below it is (as fsutil's walker re-includes `!pattern` matches).
fn walk(
    ctx: &Ctx<'_>,
    tree: &Root,
    top: &CleanPath,
    filter: &Filter<'_>,
    dir: &CleanPath,
    depth: usize,
    nodes: &mut Vec<Node>,
) -> Result<(), FileOpError> {
    if depth >= MAX_DEPTH {
        return Err(FileOpError::TooDeep {
            action: ctx.action.clone(),
            path: show(&join(top, dir)),
            limit: MAX_DEPTH,
        });
    }
    for name in tree.read_dir(&join(top, dir)).map_err(|e| ctx.fs(e))? {
        let rel_p = dir.join(&name);
        let full = join(top, &rel_p);
        let Some(st) = tree.lstat(&full).map_err(|e| ctx.fs(e))? else {
            continue;
        };
        let (r, f) = (rel(&rel_p), rel(&full));
        let ignored = filter.ignore.is_some_and(|m| m.is_excluded(&f));
        let excluded = filter.exclude.as_ref().is_some_and(|m| m.is_excluded(&r));
        let included = filter.include.as_ref().is_none_or(|m| m.is_excluded(&r));
        if kind(&st) != FileType::Directory {
            if !ignored && !excluded && included {
                nodes.push(Node { rel: rel_p, st });
            }
            continue;
        }
        if ignored && !filter.ignore.is_some_and(|m| m.may_reinclude_under(&f)) {
            continue;
        }
        if excluded
            && !filter
                .exclude
                .as_ref()
                .is_some_and(|m| m.may_reinclude_under(&r))
        {
            continue;
        }
        let conditional = ignored || excluded || !included;
        let at = nodes.len();
        nodes.push(Node {
            rel: rel_p.clone(),
            st,
        });
        walk(ctx, tree, top, filter, &rel_p, depth + 1, nodes)?;
        if conditional && nodes.len() == at + 1 {
            nodes.pop();
        }
    }
    Ok(())
}

/// Carry out the plan: `src`/rel is copied to `target`/rel. Directories are made
/// first, in order; then the other entries, which are independent of each other,
/// in [`batches`] on up to [`COPY_THREADS`] threads; directories get their times last, deepest
/// first, since creating children changes them. The result does not depend on the
/// thread count: a directory that cannot be made fails the copy before any file is
/// written, and of several files that fail, the first in plan order is reported.
fn write_nodes(
    ctx: &Ctx<'_>,
    tree: &Root,
    src: &CleanPath,
    target: &CleanPath,
    nodes: &[Node],
    w: &Write,
) -> Result<(), FileOpError> {
    let mut dirs = Vec::new();
    let mut leaves = Vec::new();
    for node in nodes {
        let to = join(target, &node.rel);
        if kind(&node.st) != FileType::Directory {
            leaves.push(node);
            continue;
        }
        if ctx.is_dir(&to)? {
            // An existing directory keeps its owner and mode; it only gets the
            // source's times, as fsutil's copy does.
            dirs.push((to, &node.st));
            continue;
        }
        if ctx.lstat(&to)?.is_some() {
            return Err(ctx.conflict(&to, "cannot copy a directory onto a non-directory"));
        }
        let leaf = ctx.root.mkdir(&to).map_err(|e| ctx.fs(e))?;
        finish_leaf(ctx, tree, &join(src, &node.rel), &leaf, &node.st, w, None)?;
        dirs.push((to, &node.st));
    }
    let batches = batches(&leaves);
    for_each_parallel(&batches, |batch| {
        batch
            .iter()
            .try_for_each(|node| write_leaf(ctx, tree, src, target, node, w))
    })?;
    for (to, st) in dirs.iter().rev() {
        let (secs, nanos) = times(st, w.created);
        let leaf = ctx.root.open_dir(to).map_err(|e| ctx.fs(e))?;
        leaf.set_mtime(secs, nanos).map_err(|e| ctx.fs(e))?;
    }
    Ok(())
}

/// Threads that copy a plan's files.
const COPY_THREADS: usize = 4;

/// Plans with fewer batches than this are copied on the calling thread.
const PARALLEL_FROM: usize = 4;

/// A batch of entries ends at this many entries or bytes.
const BATCH_ENTRIES: usize = 256;
const BATCH_BYTES: u64 = 32 << 20;

/// Files at least this large are flushed to disk once copied, on the copying
/// thread: unmounting the snapshot would flush them anyway, one file after another
/// while nothing else runs.
const FLUSH_FROM: u64 = 16 << 20;

/// `leaves` cut into batches of consecutive entries of one directory: threads
/// creating entries in the same directory would wait on its lock, and a batch
/// keeps one thread there.
fn batches<'a>(leaves: &[&'a Node]) -> Vec<Vec<&'a Node>> {
    let mut out: Vec<Vec<&Node>> = Vec::new();
    let mut bytes = 0u64;
    for &node in leaves {
        let size = u64::try_from(node.st.st_size).unwrap_or(0);
        let same_dir = out
            .last()
            .and_then(|b| b.last())
            .is_some_and(|prev| prev.rel.parent() == node.rel.parent());
        match out.last_mut() {
            Some(batch)
                if same_dir && batch.len() < BATCH_ENTRIES && bytes + size <= BATCH_BYTES =>
            {
                batch.push(node);
                bytes += size;
            }
            _ => {
                out.push(vec![node]);
                bytes = size;
            }
        }
    }
    out
}

/// Run `f` on every item, on up to [`COPY_THREADS`] threads taking items in order;
/// after a failure no new item is started, and the failure of the earliest item is
/// returned.
fn for_each_parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), FileOpError> + Sync,
) -> Result<(), FileOpError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(COPY_THREADS);
    if items.len() < PARALLEL_FROM || threads < 2 {
        return items.iter().try_for_each(f);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None::<(usize, FileOpError)>);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= items.len() {
                        return;
                    }
                    if let Err(e) = f(&items[i]) {
                        let mut first = failed.lock().expect("not poisoned");
                        if first.as_ref().is_none_or(|(j, _)| i < *j) {
                            *first = Some((i, e));
                        }
                        // Stop handing out items.
                        next.store(items.len(), std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner().expect("not poisoned") {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Copy one entry that is not a directory.
fn write_leaf(
    ctx: &Ctx<'_>,
    tree: &Root,
    src: &CleanPath,
    target: &CleanPath,
    node: &Node,
    w: &Write,
) -> Result<(), FileOpError> {
    let fs = |e| ctx.fs(e);
    let from = join(src, &node.rel);
    let to = join(target, &node.rel);
    let st = &node.st;
    let ty = kind(st);
    if ctx.lstat(&to)?.map(|s| kind(&s)) == Some(FileType::Directory) {
        return Err(ctx.conflict(&to, "cannot replace a directory with a file"));
    }
    let leaf = match ty {
        FileType::RegularFile => {
            let mut input = tree.open_regular(&from).map_err(fs)?;
            let (mut out, leaf) = ctx.root.create_file(&to).map_err(fs)?;
            let copied = io::copy(&mut input, &mut out).map_err(|source| FileOpError::Io {
                action: ctx.action.clone(),
                path: show(&from),
                source,
            })?;
            if copied >= FLUSH_FROM {
                out.sync_data().map_err(|source| FileOpError::Io {
                    action: ctx.action.clone(),
                    path: show(&to),
                    source,
                })?;
            }
            // Read through the open file: one call for a file without any (most).
            finish_leaf(ctx, tree, &from, &leaf, st, w, Some(fd_xattrs(&input)))?;
            let (secs, nanos) = times(st, w.created);
            return leaf.set_mtime(secs, nanos).map_err(fs);
        }
        FileType::Symlink => {
            let link = tree.read_link(&from).map_err(fs)?;
            ctx.root.symlink(&link, &to).map_err(fs)?
        }
        FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
            let kind = match ty {
                FileType::Fifo => NodeKind::Fifo,
                FileType::CharacterDevice => NodeKind::Char,
                _ => NodeKind::Block,
            };
            let mode = w.mode_of(st);
            let dev = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
            ctx.root.mknod(&to, kind, mode, dev).map_err(fs)?
        }
        // Sockets and unknown types are not copied.
        _ => return Ok(()),
    };
    finish_leaf(ctx, tree, &from, &leaf, st, w, None)?;
    let (secs, nanos) = times(st, w.created);
    leaf.set_mtime(secs, nanos).map_err(fs)
}

/// Owner, then mode and extended attributes (not for symlinks) of a new entry.
fn finish_leaf(
    ctx: &Ctx<'_>,
    tree: &Root,
    from: &CleanPath,
    leaf: &archive::Leaf,
    st: &Stat,
    w: &Write,
    xattrs: Option<Xattrs>,
) -> Result<(), FileOpError> {
    let fs = |e| ctx.fs(e);
    if w.keep_owner {
        leaf.set_owner(st.st_uid, st.st_gid).map_err(fs)?;
    } else {
        leaf.set_owner(w.owner.uid, w.owner.gid).map_err(fs)?;
    }
    if kind(st) != FileType::Symlink {
        // After the owner: chown clears setuid and setgid.
        leaf.set_mode(w.mode_of(st)).map_err(fs)?;
        // After the owner too: chown drops file capabilities.
        let attrs = match xattrs {
            Some(attrs) => attrs,
            None => path_xattrs(tree, from),
        };
        for (name, value) in attrs {
            let _ = leaf.set_xattr(&name, &value);
        }
    }
    Ok(())
}

impl Write {
    /// The mode a copied entry gets: `--chmod` applied, or the source's.
    fn mode_of(&self, st: &Stat) -> u32 {
        match &self.mode {
            Some(m) => m.apply(st.st_mode & 0o7777, kind(st) == FileType::Directory),
            None => st.st_mode & 0o7777,
        }
    }
}

fn times(st: &Stat, created: Option<i64>) -> (i64, u32) {
    match created {
        Some(t) => (t, 0),
        None => (
            st.st_mtime,
            u32::try_from(st.st_mtime_nsec).unwrap_or_default(),
        ),
    }
}

/// A source's extended attributes. They are copied best effort, as BuildKit does (its
/// handler only logs): a filesystem without them must not fail the copy.
type Xattrs = Vec<(String, Vec<u8>)>;

/// The extended attributes of the entry at `from`, looked up by path.
fn path_xattrs(tree: &Root, from: &CleanPath) -> Xattrs {
    match tree.open_leaf(from) {
        Ok(Some(src)) => src
            .xattrs()
            .map_or_else(|_| Vec::new(), |a| a.into_iter().collect()),
        _ => Vec::new(),
    }
}

/// The extended attributes of an open file: a file with none (most) costs one call
/// and no allocation. Lists and values are read into a small buffer first, then a
/// 64 KiB one (the kernel's limit for both) when the kernel says it is too small.
fn fd_xattrs(file: &std::fs::File) -> Xattrs {
    use rustix::fs::{fgetxattr, flistxattr};
    let read = |f: &dyn Fn(&mut [u8]) -> rustix::io::Result<usize>| -> Option<Vec<u8>> {
        let mut small = [0u8; 1024];
        match f(&mut small) {
            Ok(n) => Some(small[..n].to_vec()),
            Err(rustix::io::Errno::RANGE) => {
                let mut big = vec![0u8; 65536];
                let n = f(&mut big).ok()?;
                big.truncate(n);
                Some(big)
            }
            Err(_) => None,
        }
    };
    let Some(names) = read(&|buf| flistxattr(file, buf)) else {
        return Vec::new();
    };
    names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|name| {
            let name = std::str::from_utf8(name).ok()?;
            let value = read(&|buf| fgetxattr(file, name, buf))?;
            Some((name.to_owned(), value))
        })
        .collect()
}
