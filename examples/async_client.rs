//! An async API client whose slow calls are cached, runnable offline: the
//! "network" is a half-second sleep.
//!
//! ```sh
//! cargo run --example async_client --features async
//! ```

use std::time::{Duration, Instant};

use cachier::cachier;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct ApiError {
    message: String,
}

/// A client of a slow API, shaped like one built on `reqwest`.
#[derive(Clone)]
struct Client {
    base: String,
}

impl Client {
    /// Fetches a user. Concurrent callers asking for the same user (in this
    /// process or in others sharing the cache) wait for one request. The
    /// client is not part of the key.
    #[cachier(stale_after = "1h", ignore = [self])]
    async fn user(&self, id: u64) -> Result<User, ApiError> {
        tokio::time::sleep(Duration::from_millis(500)).await; // the network
        match id {
            0 => Err(ApiError {
                message: format!("{}/users/0: no such user", self.base),
            }), // returned, never cached
            _ => Ok(User {
                id,
                name: format!("user-{id}"),
            }),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), cachier::Error> {
    cachier::cache_of!(Client::user).clear()?;
    let client = Client {
        base: "https://api.example".into(),
    };

    let started = Instant::now();
    let (a, b, c) = tokio::join!(client.user(7), client.user(7), client.user(7));
    println!(
        "three concurrent calls: {:?} in {:?}",
        a.map(|u| u.name),
        started.elapsed()
    );
    assert!(b.is_ok() && c.is_ok());

    let started = Instant::now();
    let user = client.user(7).await;
    println!(
        "a later call:           {:?} in {:?}",
        user.map(|u| u.name),
        started.elapsed()
    );

    // Per-call options, across `.await`s: recompute this one.
    let started = Instant::now();
    let refresh = cachier::CallOptions::new().overwrite_cache(true);
    let user = cachier::with_options_async(refresh, client.user(7)).await;
    println!(
        "an overwriting call:    {:?} in {:?}",
        user.map(|u| u.name),
        started.elapsed()
    );

    let error = client.user(0).await.err().map(|e| e.message);
    println!("an error:               {error:?}");
    println!("{:?}", cachier::cache_of!(Client::user).info());
    Ok(())
}
