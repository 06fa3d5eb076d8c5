//! One connection to either database, behind the few calls the SQL core
//! makes: run a statement, read one nullable blob.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::types::ToSql as PostgresParam;
use rusqlite::types::ToSql as SqliteParam;
use rusqlite::{ErrorCode, OpenFlags, OptionalExtension};

use crate::cores::remote::Link;
use crate::error::{Error, Result};

/// A value bound to a statement's `$n` placeholder.
#[derive(Clone, Copy, Debug)]
pub(super) enum Param<'a> {
    Text(&'a str),
    Int(i64),
    Bytes(&'a [u8]),
}

/// Where a URL points: a PostgreSQL server or an SQLite file.
#[derive(Clone, Debug)]
pub(super) enum Database {
    Postgres(Box<postgres::Config>),
    Sqlite(PathBuf),
}

impl Database {
    /// `postgres://..` (or `postgresql://..`) or `sqlite://<path>`.
    pub fn parse(url: &str) -> Result<Database> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return if path.is_empty() {
                Err(Error::Backend("an sqlite:// URL needs a file path".into()))
            } else {
                Ok(Database::Sqlite(PathBuf::from(path)))
            };
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return postgres::Config::from_str(url)
                .map(|config| Database::Postgres(Box::new(config)))
                .map_err(|e| Error::Backend(format!("bad PostgreSQL URL: {e}")));
        }
        Err(Error::Backend(
            "an SQL URL begins with postgres:// or sqlite://".into(),
        ))
    }

    /// How log messages name the database.
    pub fn name(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "PostgreSQL",
            Database::Sqlite(_) => "SQLite",
        }
    }

    /// The column type of byte strings.
    pub fn blob_type(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "BYTEA",
            Database::Sqlite(_) => "BLOB",
        }
    }

    /// A new connection. Each statement may take `timeout` (on SQLite: may
    /// wait that long for another process's write); no blob read is larger
    /// than `max_len` on SQLite, whose file anyone able to write it controls.
    pub fn connect(&self, timeout: Duration, max_len: usize) -> Result<Connection> {
        let failed = |e: &dyn std::fmt::Display| Error::Backend(format!("cannot open {}: {e}", self.name()));
        match self {
            Database::Postgres(config) => {
                let mut client = (**config)
                    .clone()
                    .connect_timeout(timeout)
                    .connect(postgres::NoTls)
                    .map_err(|e| failed(&e))?;
                client
                    .batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis().max(1)))
                    .map_err(|e| failed(&e))?;
                Ok(Connection::Postgres {
                    client: Box::new(client),
                    prepared: HashMap::new(),
                })
            }
            Database::Sqlite(path) => {
                // No URI parsing, and no symbolic link as the database file.
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_NOFOLLOW;
                let open = || -> rusqlite::Result<rusqlite::Connection> {
                    let connection = rusqlite::Connection::open_with_flags(path, flags)?;
                    connection.busy_timeout(timeout)?;
                    let max_len = i32::try_from(max_len).unwrap_or(i32::MAX);
                    connection.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, max_len)?;
                    // The schema is data: never let it run functions with side effects.
                    connection.pragma_update(None, "trusted_schema", false)?;
                    // Several processes read while one writes; a write survives the
                    // writer's crash (not a power loss, which a cache can afford).
                    let mode: String =
                        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
                    if !mode.eq_ignore_ascii_case("wal") {
                        tracing::warn!(%mode, "cachier: SQLite refused WAL mode; processes will wait on each other");
                    }
                    connection.pragma_update(None, "synchronous", "NORMAL")?;
                    Ok(connection)
                };
                // Connections setting up a new file at once (switching it to
                // WAL) can find it locked with no wait, where waiting could
                // deadlock: opening again gets through once the other is done.
                let deadline = Instant::now() + timeout;
                loop {
                    match open() {
                        Err(e) if is_busy(&e) && Instant::now() < deadline => std::thread::sleep(BUSY_RETRY),
                        opened => return opened.map(Connection::Sqlite).map_err(|e| failed(&e)),
                    }
                }
            }
        }
    }
}

/// How long an SQLite open waits before it tries again after finding the
/// file locked.
const BUSY_RETRY: Duration = Duration::from_millis(2);

/// Whether SQLite refused `error` because another connection held a lock.
fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// An open connection to one of the databases.
pub(super) enum Connection {
    Postgres {
        client: Box<postgres::Client>,
        /// Statements prepared on this connection, by their text: one round trip per call.
        prepared: HashMap<String, postgres::Statement>,
    },
    Sqlite(rusqlite::Connection),
}

/// What a statement failed with.
#[derive(Debug)]
pub(super) enum DbError {
    Postgres(postgres::Error),
    Sqlite(rusqlite::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Postgres(e) => write!(f, "PostgreSQL: {e}"),
            DbError::Sqlite(e) => write!(f, "SQLite: {e}"),
        }
    }
}

impl DbError {
    /// Whether the statement failed because its table does not exist.
    pub fn is_missing_table(&self) -> bool {
        match self {
            DbError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE),
            DbError::Sqlite(e) => e.to_string().contains("no such table"),
        }
    }
}

impl Connection {
    /// Runs `sql` (placeholders `$1`, `$2`.. in order of first use) with
    /// `params`; returns how many rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> std::result::Result<u64, DbError> {
        match self {
            Connection::Postgres { client, prepared } => {
                let statement = prepare(client, prepared, sql)?;
                client
                    .execute(&statement, &postgres_params(params))
                    .map_err(DbError::Postgres)
            }
            Connection::Sqlite(connection) => connection
                .prepare_cached(sql)
                .and_then(|mut statement| statement.execute(&*sqlite_params(params)))
                .map(|changed| changed as u64)
                .map_err(DbError::Sqlite),
        }
    }

    /// The one column of the row `sql` selects: `None` if there is no row,
    /// `Some(None)` if the column is NULL.
    pub fn blob(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<Option<Option<Vec<u8>>>, DbError> {
        match self {
            Connection::Postgres { client, prepared } => {
                let statement = prepare(client, prepared, sql)?;
                let row = client
                    .query_opt(&statement, &postgres_params(params))
                    .map_err(DbError::Postgres)?;
                row.map(|row| row.try_get(0))
                    .transpose()
                    .map_err(DbError::Postgres)
            }
            Connection::Sqlite(connection) => connection
                .prepare_cached(sql)
                .and_then(|mut statement| {
                    statement
                        .query_row(&*sqlite_params(params), |row| row.get(0))
                        .optional()
                })
                .map_err(DbError::Sqlite),
        }
    }
}

/// One row of a listing: function, key, bytes, computed at (ms since 1970).
pub type Listed = (String, String, i64, Option<i64>);

impl Connection {
    /// The rows `sql` selects, of the four columns of a [`Listed`].
    pub fn listing(&mut self, sql: &str, params: &[Param<'_>]) -> std::result::Result<Vec<Listed>, DbError> {
        match self {
            Connection::Postgres { client, prepared } => {
                let statement = prepare(client, prepared, sql)?;
                let rows = client
                    .query(&statement, &postgres_params(params))
                    .map_err(DbError::Postgres)?;
                rows.iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)))
                    .collect::<std::result::Result<_, postgres::Error>>()
                    .map_err(DbError::Postgres)
            }
            Connection::Sqlite(connection) => connection
                .prepare_cached(sql)
                .and_then(|mut statement| {
                    statement
                        .query_map(&*sqlite_params(params), |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                        })?
                        .collect()
                })
                .map_err(DbError::Sqlite),
        }
    }
}

/// `sql` prepared on `client`, once per connection.
fn prepare(
    client: &mut postgres::Client,
    prepared: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> std::result::Result<postgres::Statement, DbError> {
    if let Some(statement) = prepared.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql).map_err(DbError::Postgres)?;
    prepared.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

fn postgres_params<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn PostgresParam + Sync)> {
    params
        .iter()
        .map(|param| -> &(dyn PostgresParam + Sync) {
            match param {
                Param::Text(text) => text,
                Param::Int(int) => int,
                Param::Bytes(bytes) => bytes,
            }
        })
        .collect()
}

fn sqlite_params<'a>(params: &'a [Param<'a>]) -> Vec<&'a dyn SqliteParam> {
    params
        .iter()
        .map(|param| -> &dyn SqliteParam {
            match param {
                Param::Text(text) => text,
                Param::Int(int) => int,
                Param::Bytes(bytes) => bytes,
            }
        })
        .collect()
}

impl Link for Connection {
    type Error = DbError;

    fn unreachable(error: &DbError) -> bool {
        match error {
            // A refused statement comes with the server's own error; anything
            // else (a closed connection, an I/O error, a timeout) means the
            // server is not there.
            // server is not there; so do a shutdown (57P..) and a broken connection (08...).
            DbError::Postgres(e) => e.as_db_error().is_none_or(|db| {
                let code = db.code().code();
                code.starts_with("57P") || code.starts_with("08")
            }),
            DbError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Connection::Postgres { client, .. } => !client.is_closed(),
            Connection::Sqlite(_) => true,
        }
    }
}
