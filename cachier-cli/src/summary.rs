//! What the listings say about a function's directory, for people and for
//! scripts (`--json`).

use std::time::{SystemTime, UNIX_EPOCH};

use cachier_core::catalog::Stored;
use cachier_core::file::scan::{File, Function, Kind};
use serde::Serialize;

/// One row of `cachier ls`.
#[derive(Serialize)]
pub struct Summary {
    pub function: String,
    pub dir: String,
    pub entries: u64,
    pub bytes: u64,
    /// Seconds since 1970 of the oldest and newest entries' computation.
    pub oldest: Option<f64>,
    pub newest: Option<f64>,
    pub corrupt: u64,
    pub locks: u64,
    pub temp: u64,
    pub foreign: u64,
}

impl Summary {
    pub fn of(function: &Function) -> Summary {
        let count = |kind: Kind| function.files.iter().filter(|f| f.kind == kind).count() as u64;
        let times = || function.entries().filter_map(|f| f.computed_at);
        Summary {
            function: function.function(),
            dir: function.path.display().to_string(),
            entries: function.entries().count() as u64,
            // A packed entry's bytes are its segment's.
            bytes: function
                .files
                .iter()
                .filter(|f| !matches!(f.kind, Kind::Foreign | Kind::Packed))
                .map(|f| f.bytes)
                .sum(),
            oldest: times().min().map(seconds),
            newest: times().max().map(seconds),
            corrupt: count(Kind::Corrupt),
            locks: count(Kind::Lock),
            temp: count(Kind::Temp),
            foreign: count(Kind::Foreign),
        }
    }
}

impl Summary {
    /// The row of `function`, whose `entries` a shared store at `store` holds.
    pub fn of_stored(function: &str, store: &str, entries: &[Stored]) -> Summary {
        let times = || entries.iter().filter_map(|e| e.computed_at);
        Summary {
            function: function.to_owned(),
            dir: store.to_owned(),
            entries: entries.len() as u64,
            bytes: entries.iter().map(|e| e.bytes).sum(),
            oldest: times().min().map(seconds),
            newest: times().max().map(seconds),
            corrupt: 0,
            locks: 0,
            temp: 0,
            foreign: 0,
        }
    }
}

/// One row of `cachier show`.
#[derive(Serialize)]
pub struct EntryRow {
    pub key: String,
    /// The code version's directory (`code-<16 hex>`), if the entry is in one.
    pub version: Option<String>,
    pub kind: &'static str,
    pub bytes: u64,
    pub computed_at: Option<f64>,
}

impl EntryRow {
    pub fn of(file: &File) -> EntryRow {
        let version = file
            .dir
            .file_name()
            .and_then(|name| name.to_str())
            .filter(|name| name.starts_with("code-"))
            .map(str::to_owned);
        EntryRow {
            key: file.name.get(..40).unwrap_or(&file.name).to_owned(),
            version,
            kind: kind_name(file.kind),
            bytes: file.bytes,
            computed_at: file.computed_at.map(seconds),
        }
    }
}

impl EntryRow {
    pub fn of_stored(entry: &Stored) -> EntryRow {
        EntryRow {
            key: entry.key.clone(),
            version: None,
            kind: kind_name(Kind::Entry),
            bytes: entry.bytes,
            computed_at: entry.computed_at.map(seconds),
        }
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Entry => "entry",
        Kind::Corrupt => "corrupt",
        Kind::Lock => "lock",
        Kind::Temp => "temp",
        Kind::Shared => "shared",
        Kind::Segment => "segment",
        Kind::Packed => "packed",
        _ => "foreign",
    }
}

/// Seconds since 1970, as the JSON listings give times.
pub fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}
