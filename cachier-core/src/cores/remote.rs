//! What the cores on a server (MongoDB, Redis) share: skipping a server
//! found unreachable for a while, who owns a claim, and a claim's lease
//! renewed while its owner computes.

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
