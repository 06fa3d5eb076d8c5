//! The SQL core (feature `sql`): one cache in a PostgreSQL database, shared by
//! every machine that reaches it, or in an SQLite file, shared by every
//! process of one machine.
//!
//! One table (`cachier_entries` unless configured), created on first use,
//! one row per (function, key):
//!
//! ```text
//! column         type           holds
//! function       TEXT           the function's name        } primary key
//! key            TEXT           the key's 40 hex digits    }
//! value          BYTEA / BLOB   the entry in the file core's format (magic,
//!                               version, key, CRC-32, time, value); NULL
//!                               while the key is claimed but not computed
//! computed_at    BIGINT         milliseconds since 1970 (for cleanup_stale)
//! claim_owner    TEXT           "<host>/<pid>/<nonce>", NULL when unclaimed
//! claim_expires  BIGINT         milliseconds since 1970, the end of the lease
//! ```
//!
//! An entry carries its key and a checksum, so a value written under another
//! key or damaged reads as a miss. Claiming is one statement, `INSERT .. ON
//! CONFLICT .. DO UPDATE .. WHERE` the row is unclaimed or its lease has
//! expired: it changes one row for exactly one caller. The winner renews its
//! lease while it computes; renewal and release touch the claim only while it
//! is the owner's, and a release deletes the row if no value came of it.
//! Leases are read from the clocks of the computing machines, so keep them
//! within a fraction of a lease of each other.
//!
//! SQLite runs in WAL mode, so that readers never wait for a writer; a writer
//! waits for another at most `timeout`. When a server cannot be reached,
//! every operation fails fast for `retry_after` instead of paying the connect
//! timeout on each call.

mod connection;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use self::connection::{Connection, Database, Param};
use crate::cores::catalog::{Catalog, Stored};
use crate::cores::file::format;
use crate::cores::remote::{Pool, leased, off_runtime, owner_id};
use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::key::Key;

/// The largest value stored: both databases refuse values over 1 GB, less
/// room for the entry's header.
const MAX_VALUE_LEN: usize = 1_000_000_000 - 1024;

/// Settings of the SQL cores, their claims and outages.
///
/// ```
/// let params = cachier_core::SqlParams::default();
/// assert_eq!(params.table, "cachier_entries");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlParams {
    /// The database: `postgres://user@host:port/db` (also `postgresql://`),
    /// or `sqlite://<path>` for an SQLite file (`sqlite:///abs/cache.db`).
    /// Default: `$CACHIER_SQL_URL`.
    pub url: Option<String>,
    /// The table holding the entries, created on first use: letters, digits
    /// and `_`. Default: `cachier_entries`.
    pub table: String,
    /// How long connecting, and each statement, may take before a call gives
    /// up on the database. Default: 2 s.
    pub timeout: Duration,
    /// After a failure to reach the server, how long to skip it. Default: 10 s.
    pub retry_after: Duration,
    /// How long a claim lasts unless its owner renews it (owners renew every
    /// third of it while they compute). Default: 30 s.
    pub lease: Duration,
}

impl Default for SqlParams {
    fn default() -> Self {
        SqlParams {
            url: std::env::var("CACHIER_SQL_URL")
                .ok()
                .filter(|url| !url.is_empty()),
            table: "cachier_entries".into(),
            timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(10),
            lease: Duration::from_secs(30),
        }
    }
}

/// Stores the entries of one function in a PostgreSQL or SQLite table.
///
/// ```no_run
/// use cachier_core::{SqlCore, SqlParams};
///
/// let mut params = SqlParams::default();
/// params.url = Some("sqlite:///var/cache/app/cachier.db".into());
/// let core = SqlCore::with_params("app::report", &params);
/// ```
pub struct SqlCore {
    function: String,
    /// Shared with the claims, which renew and release through it.
    server: Arc<Server>,
}

/// The database as one core reaches it.
struct Server {
    /// What `params.url` names, or why it names nothing usable.
    database: std::result::Result<Database, String>,
    params: SqlParams,
    statements: Statements,
    /// How messages name the database.
    name: &'static str,
    pool: Pool<Connection>,
    /// Whether the table is known to exist.
    ready: AtomicBool,
}

/// The statements of one table, with placeholders numbered for its database.
struct Statements {
    create: String,
    get: String,
    set: String,
    claim: String,
    renew: String,
    release_unset: String,
    release_claim: String,
    clear: String,
    clear_unset: String,
    clear_claims: String,
    delete_stale: String,
    entries: String,
    entries_of: String,
    remove: String,
}

impl Statements {
    fn new(table: &str, database: Option<&Database>) -> Self {
        let blob = database.map_or("BLOB", Database::blob_type);
        // SQLite numbers `?n` placeholders, PostgreSQL `$n`.
        let sqlite = matches!(database, Some(Database::Sqlite(_)));
        let sql = |text: String| if sqlite { text.replace('$', "?") } else { text };
        let mine = "function = $1 AND key = $2";
        let listing =
            format!("SELECT function, key, CAST(length(value) AS BIGINT), computed_at FROM {table}");
        Statements {
            create: format!(
                "CREATE TABLE IF NOT EXISTS {table} (function TEXT NOT NULL, key TEXT NOT NULL, \
                 value {blob}, computed_at BIGINT, claim_owner TEXT, claim_expires BIGINT, \
                 PRIMARY KEY (function, key))"
            ),
            get: sql(format!("SELECT value FROM {table} WHERE {mine}")),
            set: sql(format!(
                "INSERT INTO {table} (function, key, value, computed_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (function, key) DO UPDATE SET value = excluded.value, computed_at = excluded.computed_at"
            )),
            claim: sql(format!(
                "INSERT INTO {table} (function, key, claim_owner, claim_expires) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (function, key) DO UPDATE SET claim_owner = excluded.claim_owner, \
                 claim_expires = excluded.claim_expires \
                 WHERE {table}.claim_owner IS NULL OR {table}.claim_expires < $5"
            )),
            renew: sql(format!(
                "UPDATE {table} SET claim_expires = $3 WHERE {mine} AND claim_owner = $4"
            )),
            release_unset: sql(format!(
                "DELETE FROM {table} WHERE {mine} AND claim_owner = $3 AND value IS NULL"
            )),
            release_claim: sql(format!(
                "UPDATE {table} SET claim_owner = NULL, claim_expires = NULL WHERE {mine} AND claim_owner = $3"
            )),
            clear: sql(format!("DELETE FROM {table} WHERE function = $1")),
            clear_unset: sql(format!(
                "DELETE FROM {table} WHERE function = $1 AND value IS NULL"
            )),
            clear_claims: sql(format!(
                "UPDATE {table} SET claim_owner = NULL, claim_expires = NULL \
                 WHERE function = $1 AND claim_owner IS NOT NULL"
            )),
            delete_stale: sql(format!(
                "DELETE FROM {table} WHERE function = $1 AND computed_at < $2"
            )),
            entries: format!("{listing} WHERE value IS NOT NULL"),
            entries_of: sql(format!("{listing} WHERE value IS NOT NULL AND function = $1")),
            remove: sql(format!("DELETE FROM {table} WHERE {mine}")),
        }
    }
}

impl SqlCore {
    /// A core on the database `params.url` names, connecting on first use.
    #[must_use]
    pub fn with_params(function: &str, params: &SqlParams) -> Self {
        let database = match (&params.url, is_identifier(&params.table)) {
            (_, false) => Err(format!(
                "bad SQL table name {:?}: use letters, digits and _",
                params.table
            )),
            (None, true) => Err("no SQL database: set CACHIER_SQL_URL or the global sql.url".into()),
            (Some(url), true) => Database::parse(url).map_err(|e| e.to_string()),
        };
        let name = database.as_ref().map_or("SQL", Database::name);
        SqlCore {
            function: function.to_owned(),
            server: Arc::new(Server {
                statements: Statements::new(&params.table, database.as_ref().ok()),
                name,
                database,
                params: params.clone(),
                pool: Pool::new(name, params.retry_after),
                ready: AtomicBool::new(false),
            }),
        }
    }

    fn with_connection<T: Send>(
        &self,
        op: impl FnMut(&mut Connection, &Statements) -> std::result::Result<T, connection::DbError> + Send,
    ) -> Result<T> {
        self.server.with_connection(op)
    }
}

impl Server {
    /// Runs `op` on a pooled connection (see [`Pool::run`]), the table
    /// created first if no connection of this core has made sure it exists,
    /// or again if it has gone (dropped, or lost by a server that crashed).
    /// The PostgreSQL client blocks on a runtime of its own, so it runs
    /// [`off_runtime`].
    fn with_connection<T: Send>(
        &self,
        mut op: impl FnMut(&mut Connection, &Statements) -> std::result::Result<T, connection::DbError> + Send,
    ) -> Result<T> {
        let database = self.database.as_ref().map_err(|e| Error::Backend(e.clone()))?;
        let connect = || database.connect(self.params.timeout, MAX_VALUE_LEN + format::HEADER_LEN);
        let mut run = || {
            self.pool.run(connect, |connection| {
                if !self.ready.load(Ordering::Acquire) {
                    create_table(connection, &self.statements.create)?;
                    self.ready.store(true, Ordering::Release);
                }
                match op(connection, &self.statements) {
                    Err(error) if error.is_missing_table() => {
                        create_table(connection, &self.statements.create)?;
                        op(connection, &self.statements)
                    }
                    result => result,
                }
            })
        };
        match database {
            Database::Postgres(_) => off_runtime(run),
            Database::Sqlite(_) => run(),
        }
    }
}

/// Creates the table unless it exists. Processes creating it at once may
/// collide in PostgreSQL's catalog; the loser finds it made.
fn create_table(connection: &mut Connection, create: &str) -> std::result::Result<(), connection::DbError> {
    connection
        .execute(create, &[])
        .or_else(|_| connection.execute(create, &[]))
        .map(drop)
}

/// Whether `name` can be a table's name as it is written: letters, digits
/// and `_`, not beginning with a digit.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Milliseconds since 1970, as the table keeps times.
fn millis(time: SystemTime) -> i64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

impl Core for SqlCore {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let hex = key.to_string();
        let params = [Param::Text(&self.function), Param::Text(&hex)];
        let value = self.with_connection(|c, sql| c.blob(&sql.get, &params))?;
        let Some(Some(bytes)) = value else {
            return Ok(None);
        };
        format::decode(key, &bytes)
            .map(Some)
            .map_err(|reason| Error::Corrupt {
                what: format!("{} row {hex}", self.function),
                reason,
            })
    }

    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        if entry.value.len() > MAX_VALUE_LEN {
            return Err(Error::Backend(format!(
                "a value of {} bytes does not fit in an SQL row",
                entry.value.len()
            )));
        }
        let (hex, bytes) = (key.to_string(), format::encode(key, entry));
        let params = [
            Param::Text(&self.function),
            Param::Text(&hex),
            Param::Bytes(&bytes),
            Param::Int(millis(entry.computed_at)),
        ];
        self.with_connection(|c, sql| c.execute(&sql.set, &params))
            .map(drop)
    }

    fn try_claim(&self, key: &Key) -> Result<Option<Claim>> {
        let (hex, owner, lease) = (key.to_string(), owner_id(), self.server.params.lease);
        let now = SystemTime::now();
        let won = self.with_connection(|c, sql| {
            c.execute(
                &sql.claim,
                &[
                    Param::Text(&self.function),
                    Param::Text(&hex),
                    Param::Text(&owner),
                    Param::Int(millis(now + lease)),
                    Param::Int(millis(now)),
                ],
            )
        })?;
        if won == 0 {
            return Ok(None);
        }
        let (server, function) = (Arc::clone(&self.server), self.function.clone());
        let name = self.server.name;
        let renewing = (Arc::clone(&server), function.clone(), hex.clone(), owner.clone());
        let renew = move || {
            let (server, function, hex, owner) = &renewing;
            let expires = millis(SystemTime::now() + lease);
            let params = [
                Param::Text(function),
                Param::Text(hex),
                Param::Int(expires),
                Param::Text(owner),
            ];
            server
                .with_connection(|c, sql| c.execute(&sql.renew, &params))
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let release = move || {
            let params = [Param::Text(&function), Param::Text(&hex), Param::Text(&owner)];
            server
                .with_connection(|c, sql| {
                    c.execute(&sql.release_unset, &params)?;
                    c.execute(&sql.release_claim, &params)
                })
                .map(drop)
                .map_err(|e| e.to_string())
        };
        Ok(Some(leased(name, lease, renew, release)))
    }

    fn clear(&self) -> Result<()> {
        self.with_connection(|c, sql| c.execute(&sql.clear, &[Param::Text(&self.function)]))
            .map(drop)
    }

    fn clear_claims(&self) -> Result<()> {
        let params = [Param::Text(&self.function)];
        self.with_connection(|c, sql| {
            c.execute(&sql.clear_unset, &params)?;
            c.execute(&sql.clear_claims, &params)
        })
        .map(drop)
    }

    fn delete_stale(&self, cutoff: SystemTime) -> Result<u64> {
        let params = [Param::Text(&self.function), Param::Int(millis(cutoff))];
        self.with_connection(|c, sql| c.execute(&sql.delete_stale, &params))
    }

    fn waits_on_network(&self) -> bool {
        // SQLite waits too, for another process's write, up to `timeout`.
        true
    }
}

impl Catalog for SqlCore {
    fn entries(&self, function: Option<&str>) -> Result<Vec<Stored>> {
        let rows = self.with_connection(|c, sql| match function {
            Some(function) => c.listing(&sql.entries_of, &[Param::Text(function)]),
            None => c.listing(&sql.entries, &[]),
        })?;
        let time = |ms: i64| UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        Ok(rows
            .into_iter()
            .map(|(function, key, bytes, computed_at)| {
                Stored::new(
                    function,
                    key,
                    u64::try_from(bytes).unwrap_or(0),
                    computed_at.map(time),
                )
            })
            .collect())
    }

    /// One transaction-less statement per entry.
    fn remove(&self, entries: &[Stored]) -> Result<u64> {
        self.with_connection(|c, sql| {
            entries.iter().try_fold(0, |removed, entry| {
                let params = [Param::Text(&entry.function), Param::Text(&entry.key)];
                Ok(removed + c.execute(&sql.remove, &params)?)
            })
        })
    }
}
