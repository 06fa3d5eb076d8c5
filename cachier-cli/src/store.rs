//! The commands on a shared store (MongoDB, Redis, SQL) through its catalog
//! (`cachier_core::catalog`): what they do on a cache directory, on entries
//! alone (a server holds no corrupt, lock or temporary files to list).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use cachier_core::catalog::{Catalog, Stored};
use cachier_core::{Budget, MongoCore, MongoParams, RedisCore, RedisParams, SqlCore, SqlParams};

use crate::summary::{EntryRow, Summary};
use crate::{Outcome, Reclaimed, print_gc, print_ls, print_show, print_stats};

/// Which kind of server a store is on.
#[derive(Clone, Copy)]
pub enum Server {
    Mongo,
    Redis,
    Sql,
}

/// A shared store, and how messages name it.
pub struct Store {
    name: String,
    catalog: Box<dyn Catalog>,
}

impl Store {
    /// The store of `server` at `url`, with the core's default names (MongoDB
    /// database `cachier`, collection `cache`; Redis prefix `cachier`; SQL
    /// table `cachier_entries`). Connects on first use.
    pub fn open(server: Server, url: String) -> Store {
        let catalog: Box<dyn Catalog> = match server {
            Server::Mongo => {
                let mut params = MongoParams::default();
                params.uri = Some(url.clone());
                Box::new(MongoCore::with_params("", &params))
            }
            Server::Redis => {
                let mut params = RedisParams::default();
                params.url = Some(url.clone());
                Box::new(RedisCore::with_params("", &params))
            }
            Server::Sql => {
                let mut params = SqlParams::default();
                params.url = Some(url.clone());
                Box::new(SqlCore::with_params("", &params))
            }
        };
        Store { name: url, catalog }
    }

    /// The entries, of `function` only if given, by function.
    fn functions(&self, function: Option<&str>) -> Result<BTreeMap<String, Vec<Stored>>, String> {
        let mut by_function: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for entry in self.catalog.entries(function).map_err(|e| e.to_string())? {
            by_function.entry(entry.function.clone()).or_default().push(entry);
        }
        Ok(by_function)
    }

    fn summaries(&self) -> Result<Vec<Summary>, String> {
        let functions = self.functions(None)?;
        Ok(functions
            .iter()
            .map(|(function, entries)| Summary::of_stored(function, &self.name, entries))
            .collect())
    }

    pub fn ls(&self, json: bool) -> Outcome {
        print_ls(&self.summaries()?, &self.name, json)
    }

    pub fn show(&self, function: &str, json: bool) -> Outcome {
        let entries = self
            .functions(Some(function))?
            .remove(function)
            .unwrap_or_default();
        if entries.is_empty() {
            return Err(format!("no entries of {function} in {}", self.name));
        }
        let rows = entries.iter().map(EntryRow::of_stored).collect();
        print_show(&format!("{function} ({})", self.name), rows, json)
    }

    pub fn clear(&self, names: &[String], all: bool) -> Outcome {
        let functions = if all {
            self.functions(None)?
        } else {
            let mut functions = BTreeMap::new();
            for name in names {
                functions.insert(
                    name.clone(),
                    self.functions(Some(name))?.remove(name).unwrap_or_default(),
                );
            }
            functions
        };
        for (function, entries) in functions {
            let removed = self.catalog.remove(&entries).map_err(|e| e.to_string())?;
            println!("{function}: removed {removed} entries");
        }
        Ok(())
    }

    /// Entries computed before `older_than`, then the oldest computed past
    /// `max_bytes` (a server keeps no record of use).
    pub fn gc(
        &self,
        older_than: Option<Duration>,
        max_bytes: Option<u64>,
        dry_run: bool,
        json: bool,
    ) -> Outcome {
        let cutoff = older_than.and_then(|age| SystemTime::now().checked_sub(age));
        let (mut doomed, mut kept): (Vec<Stored>, Vec<Stored>) = self
            .catalog
            .entries(None)
            .map_err(|e| e.to_string())?
            .into_iter()
            .partition(|e| cutoff.is_some_and(|cutoff| e.computed_at.is_some_and(|t| t < cutoff)));
        let mut report = Reclaimed {
            dry_run,
            old: doomed.len() as u64,
            ..Reclaimed::default()
        };
        if let Some(budget) = max_bytes {
            let entries = kept.drain(..).map(|e| (e.computed_at, e.bytes, e)).collect();
            let victims = Budget::new().max_bytes(budget).victims(entries);
            report.over_budget = victims.len() as u64;
            doomed.extend(victims);
        }
        report.bytes = doomed.iter().map(|e| e.bytes).sum();
        if !dry_run {
            self.catalog.remove(&doomed).map_err(|e| e.to_string())?;
        }
        print_gc(&report, json)
    }

    pub fn stats(&self, json: bool) -> Outcome {
        print_stats(&self.name, &self.summaries()?, json)
    }
}
