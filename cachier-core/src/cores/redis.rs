//! The Redis core (feature `redis`): one cache shared by every process and
//! machine that reaches the same Redis server.
//!
//! One Redis string per entry, and one per claim, under a prefix per
//! function:
//!
//! ```text
//! cachier:<function>:e:<40 hex key>   the entry, in the file core's format
//!                                     (magic, version, key, CRC-32, time, value)
//! cachier:<function>:c:<40 hex key>   a claim: its owner, "<host>/<pid>/<nonce>",
//!                                     expiring with its lease (PX)
//! ```
//!
//! An entry carries its key and a checksum, so a value written under another
//! name or damaged reads as a miss. Claiming is `SET NX PX`: exactly one caller
//! wins; the winner renews its lease while it computes, and renewal and release
//! are compare-and-set scripts that touch the claim only while it is the
//! owner's. Entries get no Redis TTL: a stale entry is what `next_time` serves
//! while it refreshes, so entries go by `clear_cache` and `cleanup_stale`.
//! Clearing walks the function's keys with `SCAN` and deletes them with
//! `UNLINK`, never blocking the server with `KEYS`.
//!
//! When the server cannot be reached, every operation fails fast for
//! `retry_after` instead of paying the connect timeout on each call.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use redis::{Client, Connection, ConnectionLike, ErrorKind, RedisResult, Script};

use crate::cores::catalog::{Catalog, Stored};
use crate::cores::file::format;
use crate::cores::remote::{Link, Pool, leased, owner_id};
use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::key::Key;

/// Redis's limit on a string, less room for the entry's header.
const MAX_VALUE_LEN: usize = 512 * 1024 * 1024 - 1024;
/// Keys asked for per `SCAN` step.
const SCAN_COUNT: usize = 1000;

/// Settings of Redis cores that connect by URL, and of claims and outages.
///
/// ```
/// let params = cachier_core::RedisParams::default();
/// assert_eq!(params.prefix, "cachier");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisParams {
    /// The server, for `backend = "redis"` without a `redis_client`, such as
    /// `redis://127.0.0.1:6379/0`. Default: `$CACHIER_REDIS_URL`.
    pub url: Option<String>,
    /// What every key of the cache begins with. Default: `cachier`.
    pub prefix: String,
    /// How long connecting, and each command, may take before a call gives up
    /// on the server. Default: 2 s.
    pub timeout: Duration,
    /// After a failure to reach the server, how long to skip it. Default: 10 s.
    pub retry_after: Duration,
    /// How long a claim lasts unless its owner renews it (owners renew every
    /// third of it while they compute). Default: 30 s.
    pub lease: Duration,
}

impl Default for RedisParams {
    fn default() -> Self {
        RedisParams {
            url: std::env::var("CACHIER_REDIS_URL")
                .ok()
                .filter(|url| !url.is_empty()),
            prefix: "cachier".into(),
            timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(10),
            lease: Duration::from_secs(30),
        }
    }
}

/// Where a core gets its client.
enum Source {
    Getter(fn() -> Client),
    Url,
}

/// Stores the entries of one function in Redis.
///
/// ```no_run
/// use cachier_core::{RedisCore, RedisParams};
///
/// fn client() -> redis::Client {
///     redis::Client::open("redis://cache.example:6379/0").unwrap()
/// }
/// let by_client = RedisCore::with_client("app::report", client, &RedisParams::default());
/// let by_url = RedisCore::with_params("app::report", &RedisParams::default());
/// ```
pub struct RedisCore {
    /// `<prefix>:<function>:`, with which every key of the function begins.
    namespace: String,
    /// Shared with the claims, which renew and release through it.
    server: Arc<Server>,
}

/// The server as one core reaches it: its client and idle connections.
struct Server {
    source: Source,
    params: RedisParams,
    client: Mutex<Option<Client>>,
    pool: Pool<Connection>,
}

impl RedisCore {
    /// A core on the client `getter` returns (called once, on first use).
    #[must_use]
    pub fn with_client(function: &str, getter: fn() -> Client, params: &RedisParams) -> Self {
        Self::new(function, Source::Getter(getter), params)
    }

    /// A core that connects to `params.url` on first use.
    #[must_use]
    pub fn with_params(function: &str, params: &RedisParams) -> Self {
        Self::new(function, Source::Url, params)
    }

    fn new(function: &str, source: Source, params: &RedisParams) -> Self {
        RedisCore {
            namespace: format!("{}:{function}:", params.prefix),
            server: Arc::new(Server {
                source,
                params: params.clone(),
                client: Mutex::new(None),
                pool: Pool::new("Redis", params.retry_after),
            }),
        }
    }

    fn entry_key(&self, key: &Key) -> String {
        format!("{}e:{key}", self.namespace)
    }

    fn claim_key(&self, key: &Key) -> String {
        format!("{}c:{key}", self.namespace)
    }

    fn with_connection<T>(&self, op: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T> {
        self.server.with_connection(op)
    }

    /// Deletes the keys matching `pattern` (a glob below the function's
    /// namespace) that `doomed` selects; returns how many went.
    fn delete_matching(
        &self,
        pattern: &str,
        doomed: impl Fn(&mut Connection, &[u8]) -> RedisResult<bool>,
    ) -> Result<u64> {
        let pattern = format!("{}{pattern}", glob_escaped(&self.namespace));
        self.with_connection(|connection| {
            let mut deleted = 0;
            scan(connection, &pattern, |connection, keys| {
                let mut chosen = Vec::new();
                for key in keys {
                    if doomed(connection, &key)? {
                        chosen.push(key);
                    }
                }
                if !chosen.is_empty() {
                    deleted += redis::cmd("UNLINK").arg(chosen).query::<u64>(connection)?;
                }
                Ok(())
            })?;
            Ok(deleted)
        })
    }
}

/// Walks the keys matching `pattern` with `SCAN` (never `KEYS`, which
/// blocks the server), handing each batch to `batch`.
fn scan(
    connection: &mut Connection,
    pattern: &str,
    mut batch: impl FnMut(&mut Connection, Vec<Vec<u8>>) -> RedisResult<()>,
) -> RedisResult<()> {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(connection)?;
        batch(connection, keys)?;
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The function and key an entry's Redis key `name` names under `prefix:`
/// (`<prefix>:<function>:e:<40 hex>`), if it is one.
fn entry_of<'a>(prefix: &str, name: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_prefix(prefix)?;
    let (function, key) = rest.split_at_checked(rest.len().checked_sub(43)?)?;
    let key = key.strip_prefix(":e:")?;
    Key::from_hex(key).map(|_| (function, key))
}

impl Catalog for RedisCore {
    /// Two pipelined round trips per `SCAN` step: the lengths, and the
    /// headers (where the time of computation is).
    fn entries(&self, function: Option<&str>) -> Result<Vec<Stored>> {
        let prefix = format!("{}:", self.server.params.prefix);
        let pattern = match function {
            Some(function) => format!("{}e:*", glob_escaped(&format!("{prefix}{function}:"))),
            None => format!("{}*:e:*", glob_escaped(&prefix)),
        };
        self.with_connection(|connection| {
            let mut found = Vec::new();
            scan(connection, &pattern, |connection, keys| {
                let names: Vec<String> = keys
                    .into_iter()
                    .filter_map(|k| String::from_utf8(k).ok())
                    .collect();
                let entries: Vec<(&str, &str, &String)> = names
                    .iter()
                    .filter_map(|name| entry_of(&prefix, name).map(|(f, k)| (f, k, name)))
                    .collect();
                if entries.is_empty() {
                    return Ok(());
                }
                let (mut lengths, mut headers) = (redis::pipe(), redis::pipe());
                for (_, _, name) in &entries {
                    lengths.cmd("STRLEN").arg(name.as_str());
                    headers
                        .cmd("GETRANGE")
                        .arg(name.as_str())
                        .arg(0)
                        .arg(format::HEADER_LEN - 1);
                }
                let lengths: Vec<u64> = lengths.query(connection)?;
                let headers: Vec<Vec<u8>> = headers.query(connection)?;
                for (((function, key, _), bytes), header) in entries.iter().zip(lengths).zip(headers) {
                    // A key removed between the steps reads as empty.
                    if bytes > 0 {
                        found.push(Stored::new(*function, *key, bytes, format::computed_at(&header)));
                    }
                }
                Ok(())
            })?;
            Ok(found)
        })
    }

    fn remove(&self, entries: &[Stored]) -> Result<u64> {
        let prefix = &self.server.params.prefix;
        self.with_connection(|connection| {
            entries.chunks(SCAN_COUNT).try_fold(0, |removed, chunk| {
                let names: Vec<String> = chunk
                    .iter()
                    .map(|e| format!("{prefix}:{}:e:{}", e.function, e.key))
                    .collect();
                Ok(removed + redis::cmd("UNLINK").arg(names).query::<u64>(connection)?)
            })
        })
    }
}

impl Server {
    /// Runs `op` on a pooled connection (see [`Pool::run`]).
    fn with_connection<T>(&self, op: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T> {
        self.pool.run(|| self.connect(), op)
    }

    /// The client, made on first use.
    fn client(&self) -> Result<Client> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = &*slot {
            return Ok(client.clone());
        }
        let client = match self.source {
            Source::Getter(getter) => getter(),
            Source::Url => open(&self.params)?,
        };
        Ok(slot.insert(client).clone())
    }

    fn connect(&self) -> Result<Connection> {
        let client = self.client()?;
        let timeout = self.params.timeout;
        let connected = client
            .get_connection_with_timeout(timeout)
            .and_then(|connection| {
                connection.set_read_timeout(Some(timeout))?;
                connection.set_write_timeout(Some(timeout))?;
                Ok(connection)
            });
        connected.map_err(|e| Error::Backend(format!("cannot connect to Redis: {e}")))
    }
}

impl Link for Connection {
    type Error = redis::RedisError;

    fn unreachable(error: &redis::RedisError) -> bool {
        error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || matches!(error.kind(), ErrorKind::IoError)
    }

    fn is_open(&self) -> bool {
        ConnectionLike::is_open(self)
    }
}

fn open(params: &RedisParams) -> Result<Client> {
    let url = params.url.as_deref().ok_or_else(|| {
        Error::Backend(
            "no Redis server: set CACHIER_REDIS_URL, the global redis.url, or a redis_client".into(),
        )
    })?;
    Client::open(url).map_err(|e| Error::Backend(format!("bad Redis URL: {e}")))
}

/// `text` with the characters `SCAN MATCH` gives a meaning escaped.
fn glob_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Extends a claim's lease, if it is still the owner's.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
    )
});
/// Removes a claim, if it is still the owner's.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
    )
});

impl Core for RedisCore {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let name = self.entry_key(key);
        let Some(bytes) =
            self.with_connection(|c| redis::cmd("GET").arg(&name).query::<Option<Vec<u8>>>(c))?
        else {
            return Ok(None);
        };
        format::decode(key, &bytes)
            .map(Some)
            .map_err(|reason| Error::Corrupt { what: name, reason })
    }

    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        if entry.value.len() > MAX_VALUE_LEN {
            return Err(Error::Backend(format!(
                "a value of {} bytes does not fit in a Redis string",
                entry.value.len()
            )));
        }
        let (name, bytes) = (self.entry_key(key), format::encode(key, entry));
        self.with_connection(|c| redis::cmd("SET").arg(&name).arg(&bytes).query::<()>(c))
    }

    fn try_claim(&self, key: &Key) -> Result<Option<Claim>> {
        let (name, owner, lease) = (self.claim_key(key), owner_id(), self.server.params.lease);
        let won = self.with_connection(|c| {
            redis::cmd("SET")
                .arg(&name)
                .arg(&owner)
                .arg("NX")
                .arg("PX")
                .arg(millis(lease))
                .query::<Option<String>>(c)
        })?;
        if won.is_none() {
            return Ok(None);
        }
        let server = Arc::clone(&self.server);
        let run = move |script: &Script, extra: Option<u64>| -> std::result::Result<(), String> {
            server
                .with_connection(|connection| {
                    let mut invocation = script.key(&name);
                    invocation.arg(&owner);
                    if let Some(extra) = extra {
                        invocation.arg(extra);
                    }
                    invocation.invoke::<i64>(connection)
                })
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let renewing = run.clone();
        Ok(Some(leased(
            "Redis",
            lease,
            move || renewing(&RENEW, Some(millis(lease))),
            move || run(&RELEASE, None),
        )))
    }

    fn clear(&self) -> Result<()> {
        self.delete_matching("*", |_, _| Ok(true)).map(drop)
    }

    fn clear_claims(&self) -> Result<()> {
        self.delete_matching("c:*", |_, _| Ok(true)).map(drop)
    }

    fn delete_stale(&self, cutoff: SystemTime) -> Result<u64> {
        let header_end = isize::try_from(format::HEADER_LEN - 1).unwrap_or(isize::MAX);
        self.delete_matching("e:*", |connection, name| {
            let header: Vec<u8> = redis::cmd("GETRANGE")
                .arg(name)
                .arg(0)
                .arg(header_end)
                .query(connection)?;
            Ok(format::computed_at(&header).is_some_and(|computed_at| computed_at < cutoff))
        })
    }

    fn waits_on_network(&self) -> bool {
        true
    }
}
