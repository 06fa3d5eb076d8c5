//! The MongoDB core (feature `mongo`): one cache shared by every process and
//! machine that reaches the same collection.
//!
//! One document per (function, key):
//!
//! ```text
//! { function: "app::report", key: "<40 hex>", version: 1,
//!   value: BinData(bincode), computed_at: Date,
//!   claim: { owner: "<host>/<pid>/<nonce>", claimed_at: Date, expires: Date } }
//! ```
//!
//! A unique index on `(function, key)` is created on first use. Claiming a key is
//! one atomic `findOneAndUpdate` with upsert that matches only an absent or
//! expired claim: exactly one caller wins, the others get a duplicate-key error
//! and wait. The winner renews its lease while it computes, so a claim outlives
//! its owner by at most one lease.
//!
//! When the server cannot be reached, every operation fails fast for
//! `retry_after` instead of paying the server-selection timeout on each call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mongodb::IndexModel;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::sync::{Client, Collection};

use crate::cores::catalog::{Catalog, Stored};
use crate::cores::remote::{Outage, leased, off_runtime, owner_id};
use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::key::Key;

/// The format version written into every document.
const VERSION: i32 = 1;
/// MongoDB's document size limit, less room for the other fields.
const MAX_VALUE_LEN: usize = 16 * 1024 * 1024 - 16 * 1024;

/// Settings of MongoDB cores that connect by URI, and of claims and outages.
///
/// ```
/// let params = cachier_core::MongoParams::default();
/// assert_eq!((params.database.as_str(), params.collection.as_str()), ("cachier", "cache"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MongoParams {
    /// The server, for `backend = "mongo"` without a `mongetter`.
    /// Default: `$CACHIER_MONGO_URI`.
    pub uri: Option<String>,
    /// Default: `cachier`.
    pub database: String,
    /// Default: `cache`.
    pub collection: String,
    /// How long a server may take to answer before a call gives up on it
    /// (URI connections only; a `mongetter` brings its own client). Default: 2 s.
    pub server_selection_timeout: Duration,
    /// After a failure to reach the server, how long to skip it. Default: 10 s.
    pub retry_after: Duration,
    /// How long a claim lasts unless its owner renews it (owners renew every
    /// third of it while they compute). Default: 30 s.
    pub lease: Duration,
}

impl Default for MongoParams {
    fn default() -> Self {
        MongoParams {
            uri: std::env::var("CACHIER_MONGO_URI")
                .ok()
                .filter(|uri| !uri.is_empty()),
            database: "cachier".into(),
            collection: "cache".into(),
            server_selection_timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(10),
            lease: Duration::from_secs(30),
        }
    }
}

/// Where a core gets its collection.
enum Source {
    Getter(fn() -> Collection<Document>),
    Uri(MongoParams),
}

/// Stores the entries of one function in a MongoDB collection.
///
/// ```no_run
/// use cachier_core::{MongoCore, MongoParams};
/// use mongodb::{bson::Document, sync::{Client, Collection}};
///
/// fn reports() -> Collection<Document> {
///     Client::with_uri_str("mongodb://db.example:27017").unwrap().database("app").collection("cache")
/// }
/// let by_getter = MongoCore::with_getter("app::report", reports, &MongoParams::default());
/// let by_uri = MongoCore::with_params("app::report", &MongoParams::default());
/// ```
pub struct MongoCore {
    function: String,
    source: Source,
    collection: Mutex<Option<Collection<Document>>>,
    indexed: AtomicBool,
    lease: Duration,
    outage: Outage,
}

impl MongoCore {
    /// A core on the collection `getter` returns (called once, on first use).
    #[must_use]
    pub fn with_getter(
        function: impl Into<String>,
        getter: fn() -> Collection<Document>,
        params: &MongoParams,
    ) -> Self {
        Self::new(function.into(), Source::Getter(getter), params)
    }

    /// A core that connects to `params.uri` on first use.
    #[must_use]
    pub fn with_params(function: impl Into<String>, params: &MongoParams) -> Self {
        Self::new(function.into(), Source::Uri(params.clone()), params)
    }

    fn new(function: String, source: Source, params: &MongoParams) -> Self {
        MongoCore {
            function,
            source,
            collection: Mutex::new(None),
            indexed: AtomicBool::new(false),
            lease: params.lease,
            outage: Outage::new("MongoDB", params.retry_after),
        }
    }

    /// Runs `op` on the collection, unless the server was found down within
    /// `retry_after`; a failure to reach it starts such a period.
    fn with_collection<T: Send>(
        &self,
        op: impl FnOnce(&Collection<Document>) -> mongodb::error::Result<T> + Send,
    ) -> Result<T> {
        self.outage.check()?;
        off_runtime(|| {
            let collection = self.collection()?;
            let result = self.ensure_index(&collection).and_then(|()| op(&collection));
            result.map_err(|e| {
                if is_unreachable(&e) {
                    self.outage.started();
                }
                Error::Backend(e.to_string())
            })
        })
    }

    fn collection(&self) -> Result<Collection<Document>> {
        let mut slot = self.collection.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(collection) = &*slot {
            return Ok(collection.clone());
        }
        let collection = match &self.source {
            Source::Getter(getter) => getter(),
            Source::Uri(params) => connect(params)?,
        };
        *slot = Some(collection.clone());
        Ok(collection)
    }

    fn ensure_index(&self, collection: &Collection<Document>) -> mongodb::error::Result<()> {
        if self.indexed.load(Ordering::Acquire) {
            return Ok(());
        }
        let unique = IndexOptions::builder().unique(true).build();
        let index = IndexModel::builder()
            .keys(doc! { "function": 1, "key": 1 })
            .options(unique)
            .build();
        collection.create_index(index).run()?;
        self.indexed.store(true, Ordering::Release);
        Ok(())
    }

    fn filter(&self, key: &Key) -> Document {
        doc! { "function": &self.function, "key": key.to_string() }
    }
}

fn connect(params: &MongoParams) -> Result<Collection<Document>> {
    let uri = params.uri.as_deref().ok_or_else(|| {
        Error::Backend(
            "no MongoDB server: set CACHIER_MONGO_URI, the global mongo.uri, or a mongetter".into(),
        )
    })?;
    let backend = |e: mongodb::error::Error| Error::Backend(e.to_string());
    let mut options = ClientOptions::parse(uri).run().map_err(backend)?;
    options.server_selection_timeout = Some(params.server_selection_timeout);
    options.connect_timeout = Some(params.server_selection_timeout);
    options.app_name.get_or_insert_with(|| "cachier".into());
    let client = Client::with_options(options).map_err(backend)?;
    Ok(client.database(&params.database).collection(&params.collection))
}

/// Errors that mean the server could not be reached, as opposed to a refused operation.
fn is_unreachable(error: &mongodb::error::Error) -> bool {
    matches!(
        *error.kind,
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
    )
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match &*error.kind {
        ErrorKind::Command(command) => command.code == 11000,
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == 11000,
        _ => false,
    }
}

fn date(time: SystemTime) -> DateTime {
    DateTime::from_system_time(time)
}

impl Core for MongoCore {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let Some(document) = self.with_collection(|c| c.find_one(self.filter(key)).run())? else {
            return Ok(None);
        };
        let corrupt = |reason: &str| Error::Corrupt {
            what: format!("{} {key}", self.function),
            reason: reason.into(),
        };
        let value = match document.get("value") {
            None => return Ok(None), // a claim whose computation has stored nothing yet
            Some(Bson::Binary(binary)) => binary.bytes.clone(),
            Some(_) => return Err(corrupt("value is not binary")),
        };
        match document.get_i32("version") {
            Ok(VERSION) => {}
            Ok(other) => {
                return Err(corrupt(&format!(
                    "format version {other}, this build reads {VERSION}"
                )));
            }
            Err(_) => return Err(corrupt("no format version")),
        }
        let computed_at = document
            .get_datetime("computed_at")
            .map_err(|_| corrupt("no computed_at"))?;
        Ok(Some(Entry::new(computed_at.to_system_time(), value)))
    }

    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        if entry.value.len() > MAX_VALUE_LEN {
            return Err(Error::Backend(format!(
                "a value of {} bytes does not fit in a MongoDB document",
                entry.value.len()
            )));
        }
        let value = Binary {
            subtype: BinarySubtype::Generic,
            bytes: entry.value.to_vec(),
        };
        let update = doc! { "$set": {
            "value": value, "computed_at": date(entry.computed_at), "version": VERSION,
        } };
        self.with_collection(|c| c.update_one(self.filter(key), update).upsert(true).run())
            .map(drop)
    }

    fn try_claim(&self, key: &Key) -> Result<Option<Claim>> {
        let owner = owner_id();
        let now = SystemTime::now();
        let mut free = self.filter(key);
        free.insert(
            "$or",
            vec![
                doc! { "claim": { "$exists": false } },
                doc! { "claim.expires": { "$lt": date(now) } },
            ],
        );
        let claim = doc! { "$set": { "claim": {
            "owner": &owner, "claimed_at": date(now), "expires": date(now + self.lease),
        } } };
        // Held elsewhere: the upsert's insert collides with the existing document.
        let won = self.with_collection(|c| match c.find_one_and_update(free, claim).upsert(true).run() {
            Ok(_) => Ok(Some(c.clone())),
            Err(e) if is_duplicate_key(&e) => Ok(None),
            Err(e) => Err(e),
        })?;
        Ok(won.map(|collection| self.hold(collection, key, owner)))
    }

    fn clear(&self) -> Result<()> {
        self.with_collection(|c| c.delete_many(doc! { "function": &self.function }).run())
            .map(drop)
    }

    fn clear_claims(&self) -> Result<()> {
        let claimed = doc! { "function": &self.function, "claim": { "$exists": true } };
        self.with_collection(|c| c.update_many(claimed, doc! { "$unset": { "claim": "" } }).run())
            .map(drop)
    }

    fn delete_stale(&self, cutoff: SystemTime) -> Result<u64> {
        let stale = doc! { "function": &self.function, "computed_at": { "$lt": date(cutoff) } };
        self.with_collection(|c| c.delete_many(stale).run())
            .map(|r| r.deleted_count)
    }

    fn waits_on_network(&self) -> bool {
        true
    }
}

impl MongoCore {
    /// A claim that renews its lease every third of it until dropped, then releases it.
    fn hold(&self, collection: Collection<Document>, key: &Key, owner: String) -> Claim {
        let mine = {
            let mut filter = self.filter(key);
            filter.insert("claim.owner", owner);
            filter
        };
        let lease = self.lease;
        let (renewing, renewed) = (collection.clone(), mine.clone());
        let renew = move || {
            let expires = date(SystemTime::now() + lease);
            let update = doc! { "$set": { "claim.expires": expires } };
            renewing
                .update_one(renewed.clone(), update)
                .run()
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let release = move || {
            let update = doc! { "$unset": { "claim": "" } };
            off_runtime(|| collection.update_one(mine, update).run())
                .map(drop)
                .map_err(|e| e.to_string())
        };
        leased("MongoDB", lease, renew, release)
    }
}

impl Catalog for MongoCore {
    /// One `find` over the documents holding a value; values travel to
    /// measure them (the wire servers this is tested on lack `$binarySize`).
    fn entries(&self, function: Option<&str>) -> Result<Vec<Stored>> {
        let mut filter = doc! { "value": { "$exists": true } };
        if let Some(function) = function {
            filter.insert("function", function);
        }
        let documents =
            self.with_collection(|c| c.find(filter).run()?.collect::<mongodb::error::Result<Vec<_>>>())?;
        Ok(documents
            .iter()
            .filter_map(|document| {
                let bytes = match document.get("value") {
                    Some(Bson::Binary(binary)) => binary.bytes.len() as u64,
                    _ => return None,
                };
                let computed_at = document
                    .get_datetime("computed_at")
                    .ok()
                    .map(|d| d.to_system_time());
                Some(Stored::new(
                    document.get_str("function").ok()?,
                    document.get_str("key").ok()?,
                    bytes,
                    computed_at,
                ))
            })
            .collect())
    }

    fn remove(&self, entries: &[Stored]) -> Result<u64> {
        self.with_collection(|c| {
            entries.iter().try_fold(0, |removed, entry| {
                let filter = doc! { "function": &entry.function, "key": &entry.key };
                Ok(removed + c.delete_one(filter).run()?.deleted_count)
            })
        })
    }
}
