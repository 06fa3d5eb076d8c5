//! What the cores on a server (MongoDB, Redis, SQL) share: skipping a server
//! found unreachable for a while, a pool of idle connections, who owns a
//! claim, and a claim's lease renewed while its owner computes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cores::Claim;
use crate::error::{Error, Result};

/// After a failure to reach the server, every operation fails fast for
/// `retry_after` instead of paying a connect timeout on each call.
pub(crate) struct Outage {
    server: &'static str,
    retry_after: Duration,
    down_until: Mutex<Option<Instant>>,
}

impl Outage {
    pub fn new(server: &'static str, retry_after: Duration) -> Self {
        Outage {
            server,
            retry_after,
            down_until: Mutex::new(None),
        }
    }

    /// An error if the server was found unreachable within `retry_after`.
    pub fn check(&self) -> Result<()> {
        let mut down = self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        match *down {
            Some(until) if Instant::now() < until => Err(Error::Backend(format!(
                "{} unreachable recently; skipping it for now",
                self.server
            ))),
            Some(_) => {
                *down = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The server could not be reached: skip it for `retry_after`.
    pub fn started(&self) {
        *self.down_until.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + self.retry_after);
    }
}

#[cfg(any(feature = "redis", feature = "sql"))]
/// A connection as a [`Pool`] keeps it.
pub(crate) trait Link: Send {
    /// What an operation on the connection fails with.
    type Error: std::fmt::Display;
    /// Whether `error` means the server could not be reached, as opposed to
    /// a refused command.
    fn unreachable(error: &Self::Error) -> bool;
    /// Whether the connection can serve another operation.
    fn is_open(&self) -> bool;
}

#[cfg(any(feature = "redis", feature = "sql"))]
/// Idle connections to one server, and its [`Outage`].
pub(crate) struct Pool<C> {
    idle: Mutex<Vec<C>>,
    outage: Outage,
}

#[cfg(any(feature = "redis", feature = "sql"))]
impl<C: Link> Pool<C> {
    pub fn new(server: &'static str, retry_after: Duration) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            outage: Outage::new(server, retry_after),
        }
    }

    /// Runs `op` on an idle connection, or on one `connect` opens, unless the
    /// server was found down within `retry_after`; a failure to reach it
    /// starts such a period. An idle connection the server dropped (say, by
    /// restarting) costs one more try on a new one, not a failure. The
    /// connection goes back to the idle ones unless the operation broke it.
    /// Concurrent callers use connections of their own.
    pub fn run<T>(
        &self,
        connect: impl Fn() -> Result<C>,
        mut op: impl FnMut(&mut C) -> std::result::Result<T, C::Error>,
    ) -> Result<T> {
        self.outage.check()?;
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        if let Some(mut connection) = idle.filter(C::is_open) {
            let result = op(&mut connection);
            match self.finish(result, connection) {
                // Dropped by the server while idle: try a new connection.
                Err(error) if C::unreachable(&error) => {}
                result => return result.map_err(|e| Error::Backend(e.to_string())),
            }
        }
        let mut connection = connect().inspect_err(|_| self.outage.started())?;
        let result = op(&mut connection);
        let result = self.finish(result, connection);
        if result.as_ref().is_err_and(C::unreachable) {
            self.outage.started();
        }
        result.map_err(|e| Error::Backend(e.to_string()))
    }

    /// Keeps `connection` for later unless `result` or its state says it is broken.
    fn finish<T>(
        &self,
        result: std::result::Result<T, C::Error>,
        connection: C,
    ) -> std::result::Result<T, C::Error> {
        if !result.as_ref().is_err_and(C::unreachable) && connection.is_open() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(connection);
        }
        result
    }
}

/// Runs `f`, a call into a client that drives a tokio runtime of its own (the
/// blocking MongoDB and PostgreSQL clients), where the client's `block_on` is
/// allowed: inline outside any tokio runtime, else on a scoped thread. Inside
/// one (an async caller dropping a claim or calling `clear_cache`, and the
/// blocking pool that async calls' operations run on) this costs a thread
/// spawn, some tens of microseconds beside a round trip to the server.
#[cfg(any(feature = "mongo", feature = "sql"))]
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Who holds a claim: this host, process and a per-claim nonce.
pub(crate) fn owner_id() -> String {
    static HOST: LazyLock<String> = LazyLock::new(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok());
        host.map_or_else(|| "unknown-host".into(), |h| h.trim().to_owned())
    });
    static NONCE: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}/{}/{}",
        *HOST,
        std::process::id(),
        NONCE.fetch_add(1, Ordering::Relaxed)
    )
}

/// A claim with a lease of `lease`: `renew` runs every third of it on a
/// thread of its own until the claim is dropped, then `release` runs. A
/// claim whose owner died thus outlives it by at most one lease.
pub(crate) fn leased(
    server: &'static str,
    lease: Duration,
    renew: impl Fn() -> std::result::Result<(), String> + Send + 'static,
    release: impl FnOnce() -> std::result::Result<(), String> + Send + 'static,
) -> Claim {
    let (stop, stopped) = mpsc::channel::<()>();
    let renewer = std::thread::Builder::new()
        .name("cachier-lease".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(lease / 3) {
                if let Err(error) = renew() {
                    tracing::warn!(%error, "cachier: cannot renew a {server} claim");
                }
            }
        });
    Claim::new(move || {
        drop(stop);
        if let Ok(renewer) = renewer {
            let _ = renewer.join();
        }
        if let Err(error) = release() {
            tracing::warn!(%error, "cachier: cannot release a {server} claim; it expires with its lease");
        }
    })
}
