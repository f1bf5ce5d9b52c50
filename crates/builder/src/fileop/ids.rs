//! `--chown` (`user[:group]`, names looked up in the destination tree) and `--chmod`
//! (octal, or symbolic like `u=rwX,go=rX`).

use std::io::Read;

use archive::CleanPath;
use graph::op::Chmod;

use super::{Ctx, FileOpError};

/// The most of `/etc/passwd` or `/etc/group` that is read.
const MAX_ID_FILE_BYTES: u64 = 1 << 20;

/// Who copied or created files belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The owner `spec` names (`None` or empty: root). As BuildKit's `readUser`: a
/// numeric user is that uid, and without a group also that gid; a user name takes
/// its uid and primary gid from the destination's `/etc/passwd`; a group is a gid or
/// a name in its `/etc/group`.
pub(super) fn owner(ctx: &Ctx<'_>, spec: Option<&str>) -> Result<Owner, FileOpError> {
    let Some(spec) = spec.filter(|s| !s.is_empty()) else {
        return Ok(Owner::default());
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let mut owner = match user.parse::<u32>() {
        Ok(uid) => Owner { uid, gid: uid },
        Err(_) => {
            let passwd = read_id_file(ctx, spec, "/etc/passwd")?;
            let entry = passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                let parse = |s: &str| s.parse::<u32>().ok();
                (f.len() >= 4 && f[0] == user).then(|| Some((parse(f[2])?, parse(f[3])?)))
            });
            let Some(Some((uid, gid))) = entry else {
                return Err(unknown(ctx, "user", user, "/etc/passwd"));
            };
            Owner { uid, gid }
        }
    };
    if let Some(group) = group {
        owner.gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = read_id_file(ctx, spec, "/etc/group")?;
                groups
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == group).then(|| f[2].parse().ok())?
                    })
                    .ok_or_else(|| unknown(ctx, "group", group, "/etc/group"))?
            }
        };
    }
    Ok(owner)
}

fn unknown(ctx: &Ctx<'_>, what: &'static str, name: &str, file: &'static str) -> FileOpError {
    FileOpError::UnknownId {
        action: ctx.action.clone(),
        what,
        name: name.to_owned(),
        file,
    }
}

/// `file` of the destination tree, read in-root and capped; empty when missing.
fn read_id_file(ctx: &Ctx<'_>, spec: &str, file: &'static str) -> Result<String, FileOpError> {
    let err = |source| FileOpError::IdFile {
        action: ctx.action.clone(),
        spec: spec.to_owned(),
        file,
        source,
    };
    let p = CleanPath::new(file.as_bytes()).expect("a constant path is clean");
    let p = super::canonical(ctx.root, &p, true).map_err(|e| ctx.fs(e))?;
    if ctx.root.lstat(&p).map_err(|e| ctx.fs(e))?.is_none() {
        return Ok(String::new());
    }
    let f = ctx.root.open_regular(&p).map_err(|e| ctx.fs(e))?;
    let mut buf = Vec::new();
    f.take(MAX_ID_FILE_BYTES)
        .read_to_end(&mut buf)
        .map_err(err)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A parsed `--chmod`.
#[derive(Debug, Clone)]
pub(super) enum Mode {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

#[derive(Debug, Clone)]
pub(super) struct Clause {
    /// Permission bits of the `who` classes (`u`: 0o4700, `g`: 0o2070, `o`: 0o1007).
    who: u32,
    actions: Vec<(u8, Perm)>,
}

#[derive(Debug, Clone)]
enum Perm {
    /// `r`, `w`, `x`, `X`, `s`, `t` letters.
    Letters(Vec<u8>),
    /// `u`, `g` or `o`: the bits that class has now.
    Copy(u8),
}

impl Mode {
    pub(super) fn parse(ctx: &Ctx<'_>, chmod: &Chmod) -> Result<Mode, FileOpError> {
        let s = match chmod {
            Chmod::Octal(m) => return Ok(Mode::Octal(m & 0o7777)),
            Chmod::Symbolic(s) => s,
        };
        let bad = |reason| FileOpError::BadChmod {
            action: ctx.action.clone(),
            mode: s.clone(),
            reason,
        };
        let mut clauses = Vec::new();
        for clause in s.split(',') {
            let b = clause.as_bytes();
            let mut i = 0;
            let mut who = 0;
            while i < b.len() && b"ugoa".contains(&b[i]) {
                who |= match b[i] {
                    b'u' => 0o4700,
                    b'g' => 0o2070,
                    b'o' => 0o1007,
                    _ => 0o7777,
                };
                i += 1;
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut actions = Vec::new();
            while i < b.len() {
                let op = b[i];
                if !b"+-=".contains(&op) {
                    return Err(bad("expected +, - or ="));
                }
                i += 1;
                let start = i;
                if i < b.len() && b"ugo".contains(&b[i]) {
                    actions.push((op, Perm::Copy(b[i])));
                    i += 1;
                    continue;
                }
                while i < b.len() && b"rwxXst".contains(&b[i]) {
                    i += 1;
                }
                actions.push((op, Perm::Letters(b[start..i].to_vec())));
            }
            if actions.is_empty() {
                return Err(bad("a clause has no operator"));
            }
            clauses.push(Clause { who, actions });
        }
        Ok(Mode::Symbolic(clauses))
    }

    /// The mode a file of mode `old` (permission bits and type bits) gets.
    pub(super) fn apply(&self, old: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Mode::Octal(m) => return *m,
            Mode::Symbolic(c) => c,
        };
        let orig_exec = old & 0o111 != 0;
        let mut mode = old & 0o7777;
        for c in clauses {
            for (op, perm) in &c.actions {
                let bits = match perm {
                    Perm::Letters(letters) => {
                        let mut bits = 0;
                        for l in letters {
                            bits |= match l {
                                b'r' => 0o444,
                                b'w' => 0o222,
                                b'x' => 0o111,
                                b'X' if is_dir || orig_exec => 0o111,
                                b's' => 0o6000,
                                b't' => 0o1000,
                                _ => 0,
                            };
                        }
                        bits & c.who
                    }
                    Perm::Copy(class) => {
                        let rwx = match class {
                            b'u' => (mode >> 6) & 7,
                            b'g' => (mode >> 3) & 7,
                            _ => mode & 7,
                        };
                        (rwx << 6 | rwx << 3 | rwx) & c.who & 0o777
                    }
                };
                match op {
                    b'+' => mode |= bits,
                    b'-' => mode &= !bits,
                    _ => {
                        // `=` clears the class's rwx (and its special bit for u/g).
                        let clear = c.who & 0o777 | (c.who & 0o6000);
                        mode = (mode & !clear) | bits;
                    }
                }
            }
        }
        mode
    }
}
