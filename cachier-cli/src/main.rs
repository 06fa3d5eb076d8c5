//! `cachier`: see, clean and bound the caches of cachier-memoized functions,
//! with no code of theirs: a cache directory (`--dir`), or a MongoDB, Redis
//! or SQL store (`--mongo=URI`, `--redis=URL`, `--sql=URL`).
//!
//! ```text
//! cachier ls                               one row per function
//! cachier show app::report                 its entries
//! cachier clear app::report | --all        what clear_cache() does
//! cachier gc --older-than 30d --max-bytes 2GB [--dry-run]
//! cachier stats                            totals, corrupt and orphaned files
//! ```
//!
//! Exit codes: 0 done, 1 an error (named on stderr), 2 a usage error.

mod human;
mod store;
mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use cachier_core::file::scan::{self, Depth, Function, Kind};
use cachier_core::{Budget, Core, FileCore, Sharing};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::human::{age, size, table};
use crate::store::{Server, Store};
use crate::summary::{EntryRow, Summary, kind_name};

/// See, clean and bound the caches of cachier-memoized functions.
#[derive(Parser)]
#[command(name = "cachier", version, about)]
struct Cli {
    #[command(flatten)]
    place: Place,
    #[command(subcommand)]
    command: Command,
}

/// Where the caches are.
#[derive(Args)]
struct Place {
    /// The cache directory.
    #[arg(long, global = true, env = "CACHIER_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Trust directories shared with the user's groups (as `CACHIER_SHARING=group`).
    #[arg(long, global = true)]
    group: bool,
    /// A MongoDB store instead: `--mongo=URI`, or `--mongo` for `$CACHIER_MONGO_URI`.
    #[arg(long, global = true, value_name = "URI", num_args = 0..=1, require_equals = true,
          conflicts_with_all = ["redis", "sql"])]
    mongo: Option<Option<String>>,
    /// A Redis store instead: `--redis=URL`, or `--redis` for `$CACHIER_REDIS_URL`.
    #[arg(long, global = true, value_name = "URL", num_args = 0..=1, require_equals = true,
          conflicts_with = "sql")]
    redis: Option<Option<String>>,
    /// An SQL store instead: `--sql=URL` (`postgres://..`, `sqlite://<path>`), or `--sql` for `$CACHIER_SQL_URL`.
    #[arg(long, global = true, value_name = "URL", num_args = 0..=1, require_equals = true)]
    sql: Option<Option<String>>,
}

impl Place {
    /// The shared store named, if any, with its URL.
    fn store(&self) -> Result<Option<Store>, String> {
        let named = [
            (&self.mongo, Server::Mongo, "CACHIER_MONGO_URI"),
            (&self.redis, Server::Redis, "CACHIER_REDIS_URL"),
            (&self.sql, Server::Sql, "CACHIER_SQL_URL"),
        ];
        let Some((url, server, variable)) = named
            .into_iter()
            .find_map(|(url, s, v)| url.as_ref().map(|u| (u, s, v)))
        else {
            return Ok(None);
        };
        let url = match url {
            Some(url) => url.clone(),
            None => std::env::var(variable)
                .ok()
                .filter(|url| !url.is_empty())
                .ok_or_else(|| format!("no URL given, and {variable} is not set"))?,
        };
        Ok(Some(Store::open(server, url)))
    }
}

#[derive(Subcommand)]
enum Command {
    /// One row per function: entries, bytes, oldest and newest.
    Ls {
        /// An array of objects, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// A function's entries: key, code version, size, when computed.
    Show {
        /// The function, as `module::name`, or its directory's name.
        function: String,
        #[arg(long)]
        json: bool,
    },
    /// Removes the entries of functions, as their `clear_cache()` does.
    Clear {
        /// The functions, as `module::name`, or their directories' names.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        functions: Vec<String>,
        /// Every function's entries.
        #[arg(long)]
        all: bool,
    },
    /// Reclaims space: corrupt entries, files of killed writers, entries over
    /// an age, and the least recently used entries past a size budget
    /// (packed entries too: the segments are then compacted).
    Gc {
        /// Removes entries computed longer ago than this (`30d`, `12h`).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "AGE")]
        older_than: Option<Duration>,
        /// Then removes the least recently used entries of the whole directory until it takes no more (`2GB`, `500MiB`).
        #[arg(long, value_name = "SIZE")]
        max_bytes: Option<bytesize::ByteSize>,
        /// Says what would go, removes nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Totals over every function, every entry checked as a lookup would.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cachier: {error}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) type Outcome = Result<(), String>;

fn run(cli: &Cli) -> Outcome {
    if let Some(store) = cli.place.store()? {
        return match &cli.command {
            Command::Ls { json } => store.ls(*json),
            Command::Show { function, json } => store.show(function, *json),
            Command::Clear { functions, all } => store.clear(functions, *all),
            Command::Gc {
                older_than,
                max_bytes,
                dry_run,
                json,
            } => store.gc(*older_than, max_bytes.map(|b| b.as_u64()), *dry_run, *json),
            Command::Stats { json } => store.stats(*json),
        };
    }
    let root = cli
        .place
        .dir
        .clone()
        .unwrap_or_else(|| cachier_core::global_params().cache_dir);
    let sharing = if cli.place.group {
        Sharing::Group
    } else {
        cachier_core::global_params().sharing
    };
    let place = Root { path: root, sharing };
    match &cli.command {
        Command::Ls { json } => ls(&place, *json),
        Command::Show { function, json } => show(&place, function, *json),
        Command::Clear { functions, all } => clear(&place, functions, *all),
        Command::Gc {
            older_than,
            max_bytes,
            dry_run,
            json,
        } => gc(
            &place,
            *older_than,
            max_bytes.map(|b| b.as_u64()),
            *dry_run,
            *json,
        ),
        Command::Stats { json } => stats(&place, *json),
    }
}

/// A cache directory and how it is shared.
struct Root {
    path: PathBuf,
    sharing: Sharing,
}

impl Root {
    /// Every function directory, read to `depth`, with a spinner on a terminal.
    fn functions(&self, depth: Depth) -> Result<Vec<Function>, String> {
        let dirs = scan::function_dirs(&self.path).map_err(|e| e.to_string())?;
        let spinner = human::spinner();
        let mut found = Vec::new();
        for dir in dirs {
            spinner.set_message(format!("reading {}", dir.display()));
            match scan::function(&dir, self.sharing, depth) {
                Ok(Some(function)) => found.push(function),
                Ok(None) => {}
                Err(error) => eprintln!("cachier: skipping {}: {error}", dir.display()),
            }
            spinner.inc(1);
        }
        spinner.finish_and_clear();
        Ok(found)
    }

    /// The function named `name` (`module::name`, or a directory's name).
    fn function(&self, name: &str, depth: Depth) -> Result<Function, String> {
        for dir_name in [FileCore::function_dir_name(name), name.to_owned()] {
            if dir_name.contains('/') {
                continue;
            }
            if let Some(function) =
                scan::function(&self.path.join(&dir_name), self.sharing, depth).map_err(|e| e.to_string())?
            {
                return Ok(function);
            }
        }
        Err(format!("no cache of {name} in {}", self.path.display()))
    }
}

fn print_json(value: &impl Serialize) -> Outcome {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

fn ls(root: &Root, json: bool) -> Outcome {
    let summaries: Vec<Summary> = root.functions(Depth::Header)?.iter().map(Summary::of).collect();
    print_ls(&summaries, &root.path.display().to_string(), json)
}

/// `cachier ls`'s output: one row per function of the store `place`.
pub(crate) fn print_ls(summaries: &[Summary], place: &str, json: bool) -> Outcome {
    if json {
        return print_json(&summaries);
    }
    if summaries.is_empty() {
        println!("no caches in {place}");
        return Ok(());
    }
    let rows = summaries.iter().map(|s| {
        vec![
            s.function.clone(),
            s.entries.to_string(),
            size(s.bytes),
            age(s.oldest),
            age(s.newest),
        ]
    });
    println!(
        "{}",
        table(&["FUNCTION", "ENTRIES", "SIZE", "OLDEST", "NEWEST"], rows)
    );
    Ok(())
}

fn show(root: &Root, name: &str, json: bool) -> Outcome {
    let function = root.function(name, Depth::Header)?;
    let rows: Vec<EntryRow> = function
        .files
        .iter()
        .filter(|f| matches!(f.kind, Kind::Entry | Kind::Corrupt | Kind::Packed))
        .map(EntryRow::of)
        .collect();
    let title = format!("{} ({})", function.function(), function.path.display());
    print_show(&title, rows, json)
}

/// `cachier show`'s output: a function's entries, the newest first.
pub(crate) fn print_show(title: &str, mut rows: Vec<EntryRow>, json: bool) -> Outcome {
    rows.sort_by(|a, b| {
        b.computed_at
            .partial_cmp(&a.computed_at)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if json {
        return print_json(&rows);
    }
    println!("{title}");
    let lines = rows.iter().map(|row| {
        let computed = row.computed_at.map_or("-".into(), |s| {
            humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s)).to_string()
        });
        vec![
            row.key.clone(),
            row.version.clone().unwrap_or_else(|| "-".into()),
            if row.kind == "corrupt" {
                "corrupt".into()
            } else {
                size(row.bytes)
            },
            computed,
            age(row.computed_at),
        ]
    });
    println!(
        "{}",
        table(&["KEY", "VERSION", "SIZE", "COMPUTED AT", "AGE"], lines)
    );
    Ok(())
}

fn clear(root: &Root, names: &[String], all: bool) -> Outcome {
    let functions = if all {
        root.functions(Depth::Names)?
    } else {
        names
            .iter()
            .map(|name| root.function(name, Depth::Names))
            .collect::<Result<_, _>>()?
    };
    for function in &functions {
        let doomed: Vec<&scan::File> = function
            .files
            .iter()
            .filter(|f| matches!(f.kind, Kind::Entry | Kind::Corrupt | Kind::Segment))
            .collect();
        let segments = doomed.iter().filter(|f| f.kind == Kind::Segment).count() as u64;
        let removed = remove(root, &doomed)?;
        let files = removed.saturating_sub(segments);
        let of_segments = match segments {
            1 => "1 segment of packed entries".to_owned(),
            n => format!("{n} segments of packed entries"),
        };
        match (files, segments) {
            (_, 0) => println!("{}: removed {removed} entries", function.function()),
            (0, _) => println!("{}: removed {of_segments}", function.function()),
            (files, _) => println!(
                "{}: removed {files} entry files and {of_segments}",
                function.function()
            ),
        }
    }
    Ok(())
}

/// Removes `files` (entries), directory by directory; returns how many went.
fn remove(root: &Root, files: &[&scan::File]) -> Result<u64, String> {
    let mut by_dir: BTreeMap<&Path, Vec<&scan::File>> = BTreeMap::new();
    for file in files {
        by_dir.entry(&file.dir).or_default().push(file);
    }
    let mut removed = 0;
    for (dir, files) in by_dir {
        removed += scan::remove_entries(dir, files, root.sharing).map_err(|e| e.to_string())?;
    }
    Ok(removed)
}

/// What `cachier gc` removed, or would remove.
#[derive(Serialize, Default)]
pub(crate) struct Reclaimed {
    dry_run: bool,
    corrupt: u64,
    old: u64,
    over_budget: u64,
    bytes: u64,
    abandoned_files: u64,
}

fn gc(
    root: &Root,
    older_than: Option<Duration>,
    max_bytes: Option<u64>,
    dry_run: bool,
    json: bool,
) -> Outcome {
    let functions = root.functions(Depth::Verify)?;
    let mut report = Reclaimed {
        dry_run,
        ..Reclaimed::default()
    };
    let cutoff = older_than.and_then(|age| SystemTime::now().checked_sub(age));
    let mut doomed: Vec<&scan::File> = Vec::new();
    let mut kept: Vec<&scan::File> = Vec::new();
    for file in functions.iter().flat_map(|f| &f.files) {
        match (file.kind, file.computed_at) {
            (Kind::Corrupt, _) => {
                report.corrupt += 1;
                doomed.push(file);
            }
            (Kind::Entry | Kind::Packed, Some(computed))
                if cutoff.is_some_and(|cutoff| computed < cutoff) =>
            {
                report.old += 1;
                doomed.push(file);
            }
            (Kind::Entry | Kind::Packed, _) => kept.push(file),
            _ => {}
        }
    }
    if let Some(budget) = max_bytes {
        // The least recently used go first: an entry file's modification
        // time is when a process last stored or read it, and a packed
        // entry's is its last use too.
        let kept = kept
            .into_iter()
            .map(|file| (file.modified, file.bytes, file))
            .collect();
        for file in Budget::new().max_bytes(budget).victims(kept) {
            report.over_budget += 1;
            doomed.push(file);
        }
    }
    report.bytes = doomed.iter().map(|file| file.bytes).sum();
    if !dry_run {
        remove(root, &doomed)?;
        for dir in directories(&functions) {
            // What writers that died left: temporary and lock files nobody holds.
            report.abandoned_files += FileCore::new(dir)
                .sharing(root.sharing)
                .reclaim()
                .map_err(|e| e.to_string())?;
        }
        for dir in packed_directories(&functions) {
            scan::compact(&dir, root.sharing).map_err(|e| e.to_string())?;
        }
    }
    print_gc(&report, json)
}

/// `cachier gc`'s output.
pub(crate) fn print_gc(report: &Reclaimed, json: bool) -> Outcome {
    if json {
        return print_json(report);
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} entries ({}): {} corrupt, {} older than the limit, {} over the size budget; {} files of dead writers",
        report.corrupt + report.old + report.over_budget,
        size(report.bytes),
        report.corrupt,
        report.old,
        report.over_budget,
        report.abandoned_files
    );
    Ok(())
}

/// The directories holding segments of packed entries.
fn packed_directories(functions: &[Function]) -> Vec<PathBuf> {
    let files = functions.iter().flat_map(|f| &f.files);
    sorted(
        files
            .filter(|file| file.kind == Kind::Segment)
            .map(|file| file.dir.clone()),
    )
}

/// Every directory holding files of the `functions`: theirs and their versions'.
fn directories(functions: &[Function]) -> Vec<PathBuf> {
    let versions = functions
        .iter()
        .flat_map(|f| f.files.iter().map(|file| file.dir.clone()));
    sorted(functions.iter().map(|f| f.path.clone()).chain(versions))
}

/// `dirs` sorted, each once.
fn sorted(dirs: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = dirs.collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The totals of `cachier stats`.
#[derive(Serialize, Default)]
struct Totals {
    functions: u64,
    entries: u64,
    bytes: u64,
    corrupt: u64,
    locks: u64,
    temp: u64,
    foreign: u64,
    oldest: Option<f64>,
    newest: Option<f64>,
}

fn stats(root: &Root, json: bool) -> Outcome {
    let summaries: Vec<Summary> = root.functions(Depth::Verify)?.iter().map(Summary::of).collect();
    print_stats(&root.path.display().to_string(), &summaries, json)
}

/// `cachier stats`'s output: the totals of `summaries`, of the store `place`.
pub(crate) fn print_stats(place: &str, summaries: &[Summary], json: bool) -> Outcome {
    let mut totals = Totals {
        functions: summaries.len() as u64,
        ..Totals::default()
    };
    for s in summaries {
        totals.entries += s.entries;
        totals.bytes += s.bytes;
        totals.corrupt += s.corrupt;
        totals.locks += s.locks;
        totals.temp += s.temp;
        totals.foreign += s.foreign;
    }
    let min = |a: Option<f64>, b: Option<f64>| [a, b].into_iter().flatten().reduce(f64::min);
    let max = |a: Option<f64>, b: Option<f64>| [a, b].into_iter().flatten().reduce(f64::max);
    totals.oldest = summaries.iter().fold(None, |t, s| min(t, s.oldest));
    totals.newest = summaries.iter().fold(None, |t, s| max(t, s.newest));
    if json {
        return print_json(&totals);
    }
    let rows = [
        ("functions", totals.functions.to_string()),
        ("entries", totals.entries.to_string()),
        ("size", size(totals.bytes)),
        ("oldest entry", age(totals.oldest)),
        ("newest entry", age(totals.newest)),
        (kind_name(Kind::Corrupt), totals.corrupt.to_string()),
        ("claims (lock files)", totals.locks.to_string()),
        ("temporary files", totals.temp.to_string()),
        ("other files (never touched)", totals.foreign.to_string()),
    ];
    println!("{place}");
    println!(
        "{}",
        table(&[], rows.into_iter().map(|(k, v)| vec![k.to_owned(), v]))
    );
    Ok(())
}
