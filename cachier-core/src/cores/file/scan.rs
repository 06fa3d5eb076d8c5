//! What a cache directory holds, read without any function's code: for tools
//! that show and clean caches, such as the `cachier` command.
//!
//! A scan goes through the same checked, no-follow directory handles as the
//! core, reads at most an entry's header (or, for [`Depth::Verify`], the
//! whole entry, bounded by the size its header declares), and classifies
//! every file by its name: files whose names the core does not write are
//! [`Kind::Foreign`], listed and never removed. The entries packed in
//! segments (see [`FileCore::segments`](super::FileCore::segments)) are
//! listed one by one too, as [`Kind::Packed`], after the segments' records
//! are read and checked as a core reads them (bounded the same way).
//!
//! ```
//! use cachier_core::file::scan;
//! use cachier_core::{Core, Entry, FileCore, Key, Sharing};
//! let root = tempfile::tempdir().unwrap();
//! let core = FileCore::new(root.path().join("app.report"));
//! core.set(&Key::new("app::report", &1u8).unwrap(), &Entry::new(std::time::SystemTime::now(), vec![1])).unwrap();
//! let dirs = scan::function_dirs(root.path()).unwrap();
//! let function = scan::function(&dirs[0], Sharing::Private, scan::Depth::Header).unwrap().unwrap();
//! assert_eq!(function.function(), "app::report");
//! assert_eq!(function.entries().count(), 1);
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::dir::Dir;
use super::segments::Compaction;
use super::{Kind as FileKind, MAX_DIR_NAME, format, is_retired, is_version, kind_of, modified};
use crate::cores::file::Sharing;
use crate::error::{Error, Result};
use crate::key::Key;

/// How much of each entry a scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Nothing: a file named as an entry is taken for one (for removing them).
    Names,
    /// The header: the time it was computed, and a check of its magic and key.
    Header,
    /// The whole entry, checksum included, as a lookup would.
    Verify,
}

/// What a file in a function's directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// An entry that passed the checks of the scan's [`Depth`].
    Entry,
    /// A file named as an entry that fails them: a lookup treats it as a miss.
    Corrupt,
    /// A claim of a computing caller (or of a dead one, until reclaimed).
    Lock,
    /// A store under way, or one a killed writer left behind.
    Temp,
    /// A file every process using the directory shares (generation
    /// counters, claims; see [`FileCore`](super::FileCore)): never an entry.
    Shared,
    /// A segment of packed entries (see
    /// [`FileCore::segments`](super::FileCore::segments)): removed whole by
    /// a clear.
    Segment,
    /// An entry packed in a segment, named by its key in hex, its size
    /// that of its record, its modification time its last use (listed for
    /// [`Depth::Header`] and [`Depth::Verify`]; every record is checked).
    Packed,
    /// Not a name the core writes: never removed.
    Foreign,
}

/// One file found in a function's directory, or one entry packed in a
/// segment there ([`Kind::Packed`]).
#[derive(Clone, Debug)]
pub struct File {
    /// The directory it is in: the function's, or one version's.
    pub dir: PathBuf,
    /// Its name in that directory.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was last written.
    pub modified: SystemTime,
    /// For entries, when their value was computed.
    pub computed_at: Option<SystemTime>,
}

/// One function's directory in a cache root, and the files in it and in its
/// versions' directories.
#[derive(Clone, Debug)]
pub struct Function {
    /// The directory's name, as [`FileCore::function_dir_name`](super::FileCore::function_dir_name) made it.
    pub dir_name: String,
    /// The directory.
    pub path: PathBuf,
    /// Every file found, in no particular order.
    pub files: Vec<File>,
}

impl Function {
    /// The function's name, as far as the directory's name tells it: `::`
    /// for `.`, escapes decoded (names over 200 bytes were shortened and
    /// come back as they are on disk).
    #[must_use]
    pub fn function(&self) -> String {
        if self.dir_name.len() > MAX_DIR_NAME - 41 && self.dir_name.contains('~') {
            return self.dir_name.clone();
        }
        let mut bytes = Vec::with_capacity(self.dir_name.len());
        let mut rest = self.dir_name.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            match b {
                b'.' => bytes.extend_from_slice(b"::"),
                b'%' if tail.len() >= 2 => match u8::from_str_radix(&String::from_utf8_lossy(&tail[..2]), 16)
                {
                    Ok(byte) => {
                        bytes.push(byte);
                        rest = &tail[2..];
                        continue;
                    }
                    Err(_) => bytes.push(b),
                },
                _ => bytes.push(b),
            }
            rest = tail;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The entries: entry files and packed entries.
    pub fn entries(&self) -> impl Iterator<Item = &File> {
        self.files
            .iter()
            .filter(|file| matches!(file.kind, Kind::Entry | Kind::Packed))
    }
}

/// The directories under `root`, sorted by name: the functions' (and any
/// other directory, which [`function`] then finds untrusted or empty). A
/// missing root holds none.
///
/// # Errors
/// When `root` cannot be read.
pub fn function_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs = match std::fs::read_dir(root) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .map(|entry| entry.path())
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(root, e)),
    };
    dirs.sort();
    Ok(dirs)
}

/// The function directory at `path` (a child of a cache root), with its files;
/// `None` if it does not exist.
///
/// # Errors
/// When it is not trusted or cannot be read.
pub fn function(path: &Path, sharing: Sharing, depth: Depth) -> Result<Option<Function>> {
    let Some(dir) = Dir::open(path, sharing, false)? else {
        return Ok(None);
    };
    let dir_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut files = Vec::new();
    for name in dir.list().map_err(|e| Error::io(path, e))? {
        // Cleared already: its files are being deleted.
        if is_retired(&name) {
            continue;
        }
        if is_version(&name) {
            let version_path = path.join(&name);
            if let Some(version) = dir.child(name.as_str(), &version_path, sharing, false)? {
                let first = files.len();
                for file in version.list().map_err(|e| Error::io(&version_path, e))? {
                    files.extend(inspect(&version, &version_path, file, depth));
                }
                if depth != Depth::Names && files[first..].iter().any(|file| file.kind == Kind::Segment) {
                    files.extend(packed(version, &version_path, sharing));
                }
            }
        } else {
            files.extend(inspect(&dir, path, name, depth));
        }
    }
    Ok(Some(Function {
        dir_name,
        path: path.to_owned(),
        files,
    }))
}

/// What the file `name` in `dir` is; `None` if it went meanwhile.
fn inspect(dir: &Dir, path: &Path, name: String, depth: Depth) -> Option<File> {
    let stat = dir.stat(&name).ok()??;
    let mut file = File {
        dir: path.to_owned(),
        kind: Kind::Foreign,
        bytes: u64::try_from(stat.st_size).unwrap_or(0),
        modified: modified(&stat),
        computed_at: None,
        name,
    };
    file.kind = match kind_of(&file.name) {
        None => Kind::Foreign,
        Some(FileKind::Lock) => Kind::Lock,
        Some(FileKind::Temp) => Kind::Temp,
        Some(FileKind::Generations | FileKind::Claims) => Kind::Shared,
        Some(FileKind::Segment) => Kind::Segment,
        Some(FileKind::Entry) if depth == Depth::Names => Kind::Entry,
        Some(FileKind::Entry) => match read_entry(dir, &file.name, depth) {
            Some(computed_at) => {
                file.computed_at = Some(computed_at);
                Kind::Entry
            }
            None => Kind::Corrupt,
        },
    };
    Some(file)
}

/// The entries packed in the segments of `version` (at `path`), each its
/// key's newest record.
fn packed(version: Dir, path: &Path, sharing: Sharing) -> Vec<File> {
    let version = version.with_generations(sharing).with_segments();
    let Some(segments) = version.segments() else {
        return Vec::new();
    };
    let entries = segments.entries(&version).into_iter();
    entries
        .map(|packed| File {
            dir: path.to_owned(),
            name: packed.key.hex().as_str().to_owned(),
            kind: Kind::Packed,
            bytes: packed.len,
            modified: packed.used,
            computed_at: Some(packed.computed_at),
        })
        .collect()
}

/// When the entry `name` was computed, if it passes the checks of `depth`.
fn read_entry(dir: &Dir, name: &str, depth: Depth) -> Option<SystemTime> {
    let key = Key::from_hex(name.get(..40)?)?;
    let (mut file, stat) = dir.open_regular(name).ok()??;
    let mut header = [0; format::HEADER_LEN];
    file.read_exact(&mut header).ok()?;
    let len = format::declared_len(&key, &header).ok()?;
    if u64::try_from(format::file_len(len)).ok()? != u64::try_from(stat.st_size).ok()? {
        return None;
    }
    match depth {
        Depth::Names | Depth::Header => format::computed_at(&header),
        Depth::Verify => {
            let mut bytes = header.to_vec();
            file.take(u64::try_from(format::file_len(len) - format::HEADER_LEN).ok()?)
                .read_to_end(&mut bytes)
                .ok()?;
            format::decode(&key, &bytes).ok().map(|entry| entry.computed_at)
        }
    }
}

/// Removes the entries among `files` (entry files, sound or corrupt, and
/// packed entries) and the segments among them from `dir`, the directory
/// of a function or version that a scan listed them in; other kinds are
/// left alone. Returns how many went. A packed entry is marked removed: its
/// bytes come back when the segments are [compacted](compact). A process
/// storing one of them meanwhile loses that store: the next call computes
/// it again.
///
/// # Errors
/// When the directory is not trusted or a file cannot be removed or written.
pub fn remove_entries<'a>(
    dir: &Path,
    files: impl IntoIterator<Item = &'a File>,
    sharing: Sharing,
) -> Result<u64> {
    let Some(handle) = open(dir, sharing)? else {
        return Ok(0);
    };
    let handle = handle.with_generations(sharing).with_segments();
    let (mut removed, mut packed) = (0, Vec::new());
    for file in files {
        let name = file.name.as_str();
        if file.kind == Kind::Packed {
            packed.extend(Key::from_hex(name));
        } else if matches!(kind_of(name), Some(FileKind::Entry | FileKind::Segment))
            && handle.remove(name).map_err(|e| Error::io(dir.join(name), e))?
        {
            removed += 1;
        }
    }
    if let Some(segments) = handle.segments().filter(|_| !packed.is_empty()) {
        segments.remove(&handle, &packed).map_err(|e| Error::io(dir, e))?;
        removed += packed.len() as u64;
    }
    handle.removed(removed);
    Ok(removed)
}

/// Compacts the segments in `dir`, one of a function's directories as a
/// [`File`] gives it (see [`FileCore::segments`](super::FileCore::segments)):
/// gives back the bytes of replaced and removed packed entries, however few
/// (the processes using the cache wait until they are over half of the
/// segments'). Segments a process holds are left to it.
///
/// # Errors
/// When the directory is not trusted, or a segment cannot be read or written.
pub fn compact(dir: &Path, sharing: Sharing) -> Result<()> {
    let Some(handle) = open(dir, sharing)? else {
        return Ok(());
    };
    let handle = handle.with_generations(sharing).with_segments();
    match handle.segments() {
        Some(segments) => segments
            .compact(&handle, Compaction::Now)
            .map_err(|e| Error::io(dir, e)),
        None => Ok(()),
    }
}

/// Opens a function's directory, or a version's inside one.
fn open(dir: &Path, sharing: Sharing) -> Result<Option<Dir>> {
    let version = dir
        .file_name()
        .and_then(|name| name.to_str())
        .filter(|name| is_version(name));
    match (version, dir.parent()) {
        (Some(version), Some(function)) => match Dir::open(function, sharing, false)? {
            Some(function) => function.child(version, dir, sharing, false),
            None => Ok(None),
        },
        _ => Dir::open(dir, sharing, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileCore;

    #[test]
    fn a_directory_name_gives_back_its_function() {
        for name in [
            "app::report",
            "app::café",
            "<app::Model as app::Scorer>::score",
            "a-b_c::d",
        ] {
            let function = Function {
                dir_name: FileCore::function_dir_name(name),
                path: PathBuf::new(),
                files: Vec::new(),
            };
            assert_eq!(function.function(), name);
        }
    }

    #[test]
    fn hex_keys_read_back() {
        let key = Key::new("scan::test", &7u8).unwrap();
        assert_eq!(Key::from_hex(key.hex().as_str()), Some(key));
        assert_eq!(Key::from_hex(&key.hex().as_str().to_uppercase()), None);
        assert_eq!(Key::from_hex("abc"), None);
    }
}
