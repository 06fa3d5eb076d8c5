//! Whose directories the file core trusts: a cache directory is input that
//! other users may have prepared, so its owner and permissions decide whether
//! its entries are served.
//!
//! | directory | trusted when |
//! |---|---|
//! | the cache root (`cache_dir`) | owned by this user or by root, and not writable by others (group-writable only with [`Sharing::Group`]), unless sticky like `/tmp` |
//! | a function's directory | owned by this user (with [`Sharing::Group`]: or by one of its groups), writable by nobody else (with [`Sharing::Group`]: but that group) |
//!
//! Entry files need no check of their own: only the writers the function's
//! directory admits can create them.

use rustix::fs::{Gid, Mode, Stat, Uid};
use rustix::process::{getegid, geteuid, getgroups};

/// Who a file cache is shared with. [`Private`](Sharing::Private) unless the
/// process says otherwise (`CACHIER_SHARING=group`, or the global params).
///
/// ```
/// use cachier_core::Sharing;
/// assert_eq!(Sharing::default(), Sharing::Private);
/// assert_eq!(Sharing::Group.dir_mode(), 0o770);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sharing {
    /// Only the user running the process: directories 0700, files 0600,
    /// whatever the umask. Directories of other owners, or writable by anyone
    /// else, are not trusted.
    #[default]
    Private,
    /// The user and the members of the directory's group, for one cache shared
    /// by a team: directories 0770 (a setgid bit is kept), files 0660. Every
    /// member of that group can then plant entries that the others are served.
    Group,
}

impl Sharing {
    /// The permission bits of the directories this mode creates.
    #[must_use]
    pub const fn dir_mode(self) -> u32 {
        match self {
            Sharing::Private => 0o700,
            Sharing::Group => 0o770,
        }
    }

    /// The permission bits of the files this mode creates.
    #[must_use]
    pub const fn file_mode(self) -> u32 {
        match self {
            Sharing::Private => 0o600,
            Sharing::Group => 0o660,
        }
    }

    /// `CACHIER_SHARING=group` selects [`Sharing::Group`]; anything else is private.
    pub(crate) fn from_env() -> Sharing {
        match std::env::var("CACHIER_SHARING").as_deref() {
            Ok("group") => Sharing::Group,
            _ => Sharing::Private,
        }
    }
}

/// Why the directory `stat` describes cannot hold a cache root, if it cannot.
pub(super) fn check_root(stat: &Stat, sharing: Sharing) -> Result<(), String> {
    let mode = Mode::from_raw_mode(stat.st_mode);
    let owner = Uid::from_raw(stat.st_uid);
    if owner != geteuid() && !owner.is_root() && !in_my_groups(stat, sharing) {
        return Err(foreign_owner(owner));
    }
    let writable_by_others = mode.intersects(others_write(sharing));
    if writable_by_others && !mode.contains(Mode::SVTX) {
        return Err(writable(mode, sharing));
    }
    Ok(())
}

/// Why the directory `stat` describes cannot hold a function's entries, if it cannot.
pub(super) fn check_function_dir(stat: &Stat, sharing: Sharing) -> Result<(), String> {
    let mode = Mode::from_raw_mode(stat.st_mode);
    let owner = Uid::from_raw(stat.st_uid);
    if owner != geteuid() && !in_my_groups(stat, sharing) {
        return Err(foreign_owner(owner));
    }
    if mode.intersects(others_write(sharing)) {
        return Err(writable(mode, sharing));
    }
    Ok(())
}

/// The permission bits beyond the sharing mode's that a directory of ours
/// should lose (a cache made by an older version, or under a loose umask).
pub(super) fn excess_bits(stat: &Stat, sharing: Sharing) -> Option<Mode> {
    let mode = Mode::from_raw_mode(stat.st_mode);
    let wanted = Mode::from_raw_mode(sharing.dir_mode()) | (mode & (Mode::SGID | Mode::SVTX));
    let have = mode & (Mode::RWXU | Mode::RWXG | Mode::RWXO | Mode::SGID | Mode::SVTX);
    (Uid::from_raw(stat.st_uid) == geteuid() && have != wanted).then_some(wanted)
}

fn others_write(sharing: Sharing) -> Mode {
    match sharing {
        Sharing::Private => Mode::WGRP | Mode::WOTH,
        Sharing::Group => Mode::WOTH,
    }
}

fn in_my_groups(stat: &Stat, sharing: Sharing) -> bool {
    let group = Gid::from_raw(stat.st_gid);
    sharing == Sharing::Group
        && (group == getegid() || getgroups().is_ok_and(|groups| groups.contains(&group)))
}

fn foreign_owner(owner: Uid) -> String {
    format!(
        "owned by uid {}, not by this user (uid {}): its entries are not served; \
         remove it, or use a cache_dir of your own",
        owner.as_raw(),
        geteuid().as_raw()
    )
}

fn writable(mode: Mode, sharing: Sharing) -> String {
    let fix = match sharing {
        Sharing::Private => "`chmod go-w` it, or opt in to a team cache with CACHIER_SHARING=group",
        Sharing::Group => "`chmod o-w` it",
    };
    format!(
        "writable by other users (mode {:o}): its entries are not served; {fix}",
        mode.bits() & 0o7777
    )
}
