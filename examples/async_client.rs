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

/// Fetches a user from a slow API. Concurrent callers asking for the same user
/// (in this process or in others sharing the cache) wait for one request.
#[cachier(stale_after = "1h")]
async fn fetch_user(id: u64) -> Result<User, ApiError> {
    tokio::time::sleep(Duration::from_millis(500)).await; // the network
    match id {
        0 => Err(ApiError {
            message: "no user 0".into(),
        }), // returned, never cached
        _ => Ok(User {
            id,
            name: format!("user-{id}"),
        }),
    }
}

#[tokio::main]
async fn main() -> Result<(), cachier::Error> {
    fetch_user.clear_cache()?;

    let started = Instant::now();
    let (a, b, c) = tokio::join!(fetch_user(7), fetch_user(7), fetch_user(7));
    println!(
        "three concurrent calls: {:?} in {:?}",
        a.map(|u| u.name),
        started.elapsed()
    );
    assert!(b.is_ok() && c.is_ok());

    let started = Instant::now();
    let user = fetch_user(7).await;
    println!(
        "a later call:           {:?} in {:?}",
        user.map(|u| u.name),
        started.elapsed()
    );

    let error = fetch_user(0).await.err().map(|e| e.message);
    println!("an error:               {error:?}");
    println!("{:?}", fetch_user.cache_info());
    Ok(())
}
