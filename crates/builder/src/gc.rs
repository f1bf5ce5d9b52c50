//! Garbage collection of build state, as BuildKit's: rules of filters
//! (`type=step|cache-mount|image`, `until=DURATION`) and a storage limit, applied
//! by `manifold prune --filter … --keep-storage …` and, as the `[gc]` policy of
//! config.toml, after each local build.
//!
//! A rule removes what it covers and was last used longer ago than `until`
//! ([`crate::inventory`] says what last use is), least recently used first, until
//! what it covers takes at most `keep_storage` (everything it may remove, without
//! one). Removing a cache record removes the snapshots no remaining record uses,
//! children before parents, and the layer-cache entries of those snapshots.
//! `type=image` is the content no name, lease or running build reaches: the
//! store's own collection, which has no last use and no size limit; the caller
//! runs it. The caller holds the build-state lock exclusively
//! ([`crate::state::try_hold_exclusive`]).

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::inventory::Inventory;
use crate::state::{Removed, StateError, remove_tree};

/// A kind of state a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Build cache records and their snapshots.
    Step,
    /// `RUN --mount=type=cache` directories.
    CacheMount,
    /// Content of the store no name reaches.
    Image,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Step, Kind::CacheMount, Kind::Image];

    fn parse(s: &str) -> Result<Kind, String> {
        match s {
            // BuildKit's names for the same kinds are accepted too.
            "step" | "regular" => Ok(Kind::Step),
            "cache-mount" | "exec.cachemount" => Ok(Kind::CacheMount),
            "image" => Ok(Kind::Image),
            _ => Err(format!(
                "unknown type {s:?}: the types are step, cache-mount and image"
            )),
        }
    }
}

/// One `--filter` (or policy `filters`) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Type(Kind),
    Until(Duration),
}

impl Filter {
    /// Parse `type=KIND` or `until=DURATION`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Filter, String> {
        let Some((key, value)) = s.split_once('=') else {
            return Err(
                "is not KEY=VALUE (type=step, type=cache-mount, type=image or until=24h)".into(),
            );
        };
        match key.trim() {
            "type" => Kind::parse(value.trim()).map(Filter::Type),
            "until" => parse_duration(value.trim()).map(Filter::Until),
            k => Err(format!(
                "has unknown key {k:?}: the keys are type and until"
            )),
        }
    }
}

/// What to remove: the kinds covered (none means the caller's default), what was
/// used more recently than `until` is kept, and removal stops once what the rule
/// covers fits in `keep_storage` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub kinds: Vec<Kind>,
    pub until: Option<Duration>,
    pub keep_storage: Option<u64>,
}

impl Rule {
    /// A rule of `filters` (types add up; the last `until` counts), covering
    /// `default` kinds when no filter names one.
    pub fn from_filters(filters: &[Filter], default: &[Kind]) -> Rule {
        let mut rule = Rule::default();
        for f in filters {
            match f {
                Filter::Type(k) if !rule.kinds.contains(k) => rule.kinds.push(*k),
                Filter::Type(_) => {}
                Filter::Until(d) => rule.until = Some(*d),
            }
        }
        if rule.kinds.is_empty() {
            rule.kinds = default.to_vec();
        }
        rule
    }

    pub fn covers(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }

    /// Whether the rule removes any build state (not only unnamed content).
    pub fn covers_build_state(&self) -> bool {
        self.covers(Kind::Step) || self.covers(Kind::CacheMount)
    }
}

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    pub records: usize,
    pub snapshots: usize,
    pub snapshot_bytes: u64,
    pub cache_mounts: usize,
    pub cache_mount_bytes: u64,
}

impl Collected {
    pub fn is_empty(&self) -> bool {
        *self == Collected::default()
    }

    /// The same, as the kinds `manifold prune` reports.
    pub fn removed(&self) -> Vec<Removed> {
        let mut out = Vec::new();
        if self.records > 0 || self.snapshots > 0 {
            out.push(Removed {
                what: format!(
                    "{} build cache record(s) and {} snapshot(s)",
                    self.records, self.snapshots
                ),
                bytes: self.snapshot_bytes,
            });
        }
        if self.cache_mounts > 0 {
            out.push(Removed {
                what: format!("{} cache mount(s)", self.cache_mounts),
                bytes: self.cache_mount_bytes,
            });
        }
        out
    }

    fn add(&mut self, o: Collected) {
        self.records += o.records;
        self.snapshots += o.snapshots;
        self.snapshot_bytes += o.snapshot_bytes;
        self.cache_mounts += o.cache_mounts;
        self.cache_mount_bytes += o.cache_mount_bytes;
    }
}

/// Apply `rules` in order to the build state of `root` (their `Image` kind is the
/// caller's), as of `now`. The caller holds the build-state lock exclusively.
pub fn collect(root: &Path, rules: &[Rule], now: SystemTime) -> Result<Collected, StateError> {
    let mut total = Collected::default();
    for rule in rules.iter().filter(|r| r.covers_build_state()) {
        let inv = Inventory::read(root)?;
        total.add(apply(&inv, rule, now)?);
    }
    Ok(total)
}

/// A unit of removal, least recently used first.
#[derive(Debug, Clone, Copy)]
enum Candidate {
    Record(usize),
    /// A snapshot no record uses.
    Unused(usize),
    Mount(usize),
}

fn apply(inv: &Inventory, rule: &Rule, now: SystemTime) -> Result<Collected, StateError> {
    let cutoff = rule.until.and_then(|d| now.checked_sub(d));
    let old = |t: SystemTime| cutoff.is_none_or(|c| t <= c);
    let mut candidates: Vec<(SystemTime, Candidate)> = Vec::new();
    let mut size = 0;
    if rule.covers(Kind::Step) {
        size += inv.snapshot_bytes();
        for (i, r) in inv.records.iter().enumerate() {
            if old(r.last_used) {
                candidates.push((r.last_used, Candidate::Record(i)));
            }
        }
        for (i, s) in inv.snapshots.iter().enumerate() {
            if s.users == 0 && old(s.last_used) {
                candidates.push((s.last_used, Candidate::Unused(i)));
            }
        }
    }
    if rule.covers(Kind::CacheMount) {
        size += inv.cache_mount_bytes();
        for (i, m) in inv.cache_mounts.iter().enumerate() {
            if old(m.last_used) {
                candidates.push((m.last_used, Candidate::Mount(i)));
            }
        }
    }
    candidates.sort_by_key(|(t, _)| *t);

    let cache = match inv.records.is_empty() {
        true => None,
        false => Some(solver::CacheStore::open(inv.root().join("cache"))?),
    };
    let mut users: Vec<usize> = inv.snapshots.iter().map(|s| s.users).collect();
    let mut doomed = Vec::new();
    let mut out = Collected::default();
    for (_, c) in candidates {
        if rule.keep_storage.is_some_and(|k| size <= k) {
            break;
        }
        match c {
            Candidate::Record(i) => {
                let record = &inv.records[i];
                if let Some(cache) = &cache {
                    cache.remove(&record.key)?;
                }
                out.records += 1;
                for s in &record.chain {
                    users[*s] -= 1;
                    if users[*s] == 0 {
                        doomed.push(*s);
                        size = size.saturating_sub(inv.snapshots[*s].bytes);
                    }
                }
            }
            Candidate::Unused(i) => {
                if !doomed.contains(&i) {
                    doomed.push(i);
                    size = size.saturating_sub(inv.snapshots[i].bytes);
                }
            }
            Candidate::Mount(i) => {
                let m = &inv.cache_mounts[i];
                out.cache_mount_bytes += remove_tree(&m.path)?;
                out.cache_mounts += 1;
                size = size.saturating_sub(m.bytes);
                let lock = m.path.with_file_name(format!("{}.lock", m.name));
                let _ = fs::remove_file(lock);
            }
        }
    }
    let removed = remove_snapshots(inv, &doomed, &mut out)?;
    forget_layers(inv.root(), &removed);
    Ok(out)
}

/// Remove the snapshots `doomed` (indexes), children before parents; one that
/// something else still uses as a parent stays. The keys removed.
fn remove_snapshots(
    inv: &Inventory,
    doomed: &[usize],
    out: &mut Collected,
) -> Result<HashSet<String>, StateError> {
    let mut left: Vec<usize> = doomed.to_vec();
    let mut removed = HashSet::new();
    loop {
        // Parents of what still exists (removed or kept), by driver and key.
        let parents: HashSet<_> = inv
            .snapshots
            .iter()
            .filter(|s| !removed.contains(s.key.as_str()))
            .filter_map(|s| s.parent.as_ref().map(|p| (s.driver.name(), p.as_str())))
            .collect();
        let (leaves, rest): (Vec<usize>, Vec<usize>) = left.iter().partition(|i| {
            let s = &inv.snapshots[**i];
            !parents.contains(&(s.driver.name(), s.key.as_str()))
        });
        if leaves.is_empty() {
            return Ok(removed); // the rest has children that stay
        }
        for i in leaves {
            let s = &inv.snapshots[i];
            if inv.remove_snapshot(s)? {
                removed.insert(s.key.as_str().to_owned());
                out.snapshots += 1;
                out.snapshot_bytes += s.bytes;
            }
        }
        left = rest;
        if left.is_empty() {
            return Ok(removed);
        }
    }
}

/// Remove the layer-cache entries (`export/steps/`) of the step snapshots `gone`:
/// their keys are never made again. Best effort: an entry left behind only takes
/// a little space.
fn forget_layers(root: &Path, gone: &HashSet<String>) {
    if gone.is_empty() {
        return;
    }
    let Ok(entries) = fs::read_dir(root.join("export").join("steps")) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let step = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("step").and_then(|s| s.as_str()).map(str::to_owned));
        if step.is_some_and(|s| gone.contains(&s)) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Parse a duration as Go's `time.ParseDuration` reads one (and so buildx's
/// `until=`): numbers with units `h`, `m`, `s`, `ms`, `us`, `ns`, such as `24h`,
/// `1h30m` or `1.5h`; the error says what is wrong.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("is empty; write a duration such as 24h, 30m or 1h30m".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("is not a duration: {num:?} is not a number"))?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let secs = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            "" => return Err("has a number without a unit (h, m or s)".into()),
            "d" => return Err("has unit d: write days as hours (7 days is 168h)".into()),
            u => {
                return Err(format!(
                    "has unknown unit {u:?}: the units are h, m, s, ms, us and ns"
                ));
            }
        };
        total += n * secs;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| "is too long".to_owned())
}

/// Parse a size as buildx reads `--keep-storage` (docker's `RAMInBytes`): bytes, or
/// a number with `k`, `m`, `g`, `t` or `p` (powers of 1024; case and a trailing `b`
/// or `ib` do not matter: `10GB`, `512m`, `1.5GiB`); the error says what is wrong.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let n: f64 = num
        .parse()
        .map_err(|_| "is not a size; write one such as 10GB, 512MB or 1073741824".to_owned())?;
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => {
            return Err("has an unknown unit: the units are k, m, g, t and p (KB, MB, GB…)".into());
        }
    };
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("is too large".into());
    }
    Ok(bytes as u64)
}

/// The default storage limit of the `[gc]` policy: a tenth of the file system
/// that holds `root`, at most 20 GiB (20 GiB when the file system cannot be read).
pub fn default_keep_storage(root: &Path) -> u64 {
    const CAP: u64 = 20 << 30;
    let mut dir = root;
    // The root may not exist yet: ask about its nearest existing ancestor.
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p,
            None => return CAP,
        }
    }
    match rustix::fs::statvfs(dir) {
        Ok(s) => (s.f_blocks.saturating_mul(s.f_frsize) / 10).min(CAP),
        Err(_) => CAP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_reads_them() {
        for (s, want) in [
            ("24h", 24.0 * 3600.0),
            ("30m", 1800.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("90s", 90.0),
            ("500ms", 0.5),
            ("0", 0.0),
            ("168h", 168.0 * 3600.0),
        ] {
            assert_eq!(
                parse_duration(s).unwrap(),
                Duration::from_secs_f64(want),
                "{s}"
            );
        }
        for (bad, why) in [
            ("", "empty"),
            ("24", "without a unit"),
            ("7d", "168h"),
            ("3x", "unknown unit"),
            ("h", "not a number"),
            ("-1h", "not a number"),
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_read_as_buildx_reads_them() {
        for (s, want) in [
            ("0", 0),
            ("1073741824", 1 << 30),
            ("10GB", 10 << 30),
            ("10gb", 10 << 30),
            ("10G", 10 << 30),
            ("512MB", 512 << 20),
            ("512m", 512 << 20),
            ("1.5GiB", 3 << 29),
            ("2 kb", 2048),
            ("1TB", 1 << 40),
        ] {
            assert_eq!(parse_size(s).unwrap(), want, "{s}");
        }
        for bad in ["", "GB", "10q", "-1", "1e400", "10 GBs"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_make_one_rule() {
        let filters: Vec<Filter> = ["type=step", "until=24h", "type=cache-mount", "type=step"]
            .iter()
            .map(|f| Filter::parse(f).unwrap())
            .collect();
        let rule = Rule::from_filters(&filters, &Kind::ALL);
        assert_eq!(rule.kinds, vec![Kind::Step, Kind::CacheMount]);
        assert_eq!(rule.until, Some(Duration::from_secs(24 * 3600)));
        assert!(!rule.covers(Kind::Image));
        let all = Rule::from_filters(&[Filter::Until(Duration::ZERO)], &Kind::ALL);
        assert_eq!(all.kinds, Kind::ALL.to_vec());
        for (bad, why) in [
            ("until", "KEY=VALUE"),
            ("type=volume", "unknown type"),
            ("label=a", "unknown key"),
            ("until=soon", "not a number"),
        ] {
            let e = Filter::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn mount_names_give_hash_and_instance() {
        let m = |name: &str| crate::inventory::MountItem {
            name: name.to_owned(),
            path: name.into(),
            bytes: 0,
            last_used: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(m("abc").instance(), 0);
        assert_eq!(m("abc-3").instance(), 3);
        assert_eq!(m("abc-3").id_hash(), "abc");
    }
}
