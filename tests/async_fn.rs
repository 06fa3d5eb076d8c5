//! `#[cachier]` on `async fn`, as a user writes it (feature `async`): call
//! sites unchanged, every control, single-flight on one thread, `Send`
//! futures, `next_time`, and `local` for futures that are not `Send`.
#![cfg(feature = "async")]

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use cachier::{CallOptions, cachier};

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("async_fn")
        .join(name)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

static FETCHES: AtomicU64 = AtomicU64::new(0);

/// Fetches a page, slowly: yields to the executor while "on the network".
#[cachier(cache_dir = scratch("fetch"), stale_after = "1h")]
async fn fetch(url: &str) -> Result<String, String> {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    match url.strip_prefix("https://") {
        Some(host) => Ok(format!("page of {host}")),
        None => Err(format!("bad url {url}")),
    }
}

#[test]
fn call_sites_stay_the_same_and_every_control_works() {
    runtime().block_on(async {
        fetch.clear_cache().unwrap();
        let runs = || FETCHES.load(Ordering::SeqCst);
        let before = runs();
        assert_eq!(fetch("https://a").await, Ok("page of a".into()));
        assert_eq!(fetch("https://a").await, Ok("page of a".into()));
        assert_eq!(runs() - before, 1, "the second call is a hit");
        assert!(fetch("nope").await.is_err());
        assert!(fetch("nope").await.is_err());
        assert_eq!(runs() - before, 3, "errors are not cached");

        assert_eq!(fetch.overwrite_cache("https://a").await, Ok("page of a".into()));
        assert_eq!(fetch.ignore_cache("https://a").await, Ok("page of a".into()));
        assert_eq!(fetch.verbose_cache("https://a").await, Ok("page of a".into()));
        assert_eq!(
            runs() - before,
            5,
            "overwrite and ignore run the body, verbose hits"
        );
        let stale = CallOptions::new().max_age(std::time::Duration::ZERO);
        assert_eq!(fetch.call_with(&stale, "https://a").await, Ok("page of a".into()));
        assert_eq!(runs() - before, 6, "max_age makes the entry stale");

        fetch.precache_value("https://b", Ok("planted".into())).unwrap();
        assert_eq!(fetch("https://b").await, Ok("planted".into()));
        assert!(fetch.cache_dpath().unwrap().starts_with(scratch("fetch")));
        fetch.clear_being_calculated().unwrap();
        fetch.wait_for_background().await;
        let info = fetch.cache_info();
        // Hits: the second call, verbose_cache, the precached value; ignore_cache bypasses the cache.
        assert_eq!(
            (info.hits, info.misses, info.stale_hits, info.recalculations),
            (3, 3, 1, 5)
        );
    });
}

static JOINED: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory")]
async fn joined(x: u64) -> u64 {
    JOINED.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    x * 2
}

#[test]
fn three_joined_calls_on_one_thread_run_the_body_once() {
    let values = runtime().block_on(async { tokio::join!(joined(21), joined(21), joined(21)) });
    assert_eq!(values, (42, 42, 42));
    assert_eq!(JOINED.load(Ordering::SeqCst), 1);
}

#[cachier(backend = "memory")]
async fn spawnable(url: &str) -> String {
    tokio::task::yield_now().await;
    url.to_uppercase()
}

#[test]
fn the_cached_future_of_a_send_body_can_be_spawned() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let page = runtime.block_on(async { tokio::spawn(spawnable("https://spawned")).await.unwrap() });
    assert_eq!(page, "HTTPS://SPAWNED");
}

static REFRESHES: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory", stale_after = "0s", next_time)]
async fn refreshed(name: &str) -> String {
    let n = REFRESHES.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::task::yield_now().await;
    format!("{name} #{n}")
}

#[test]
fn next_time_returns_the_stale_value_and_refreshes_as_a_task() {
    runtime().block_on(async {
        assert_eq!(refreshed("r").await, "r #1");
        assert_eq!(refreshed("r").await, "r #1", "stale, returned at once");
        refreshed.wait_for_background().await;
        assert_eq!(REFRESHES.load(Ordering::SeqCst), 2);
        assert_eq!(refreshed.cache_info().stale_hits, 1);
    });
}

/// Holds an `Rc` across an `.await`: its future is not `Send`.
#[cachier(backend = "memory", local)]
async fn local(x: u64) -> u64 {
    let shared = Rc::new(x);
    tokio::task::yield_now().await;
    *shared + 1
}

#[test]
fn local_caches_a_body_whose_future_is_not_send() {
    runtime().block_on(async {
        assert_eq!(local(1).await, 2);
        assert_eq!(local(1).await, 2);
    });
    assert_eq!(local.cache_info().hits, 1);
}

/// An API client: `self` is left out of the key, calls yield on "the network".
#[derive(Clone)]
struct Client {
    base: String,
}

/// Runs of `Client::user`, per id: each test asks for an id of its own, so
/// that tests running at once do not count each other's runs.
static USERS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn user_runs(id: u64) -> u64 {
    USERS[id as usize].load(Ordering::SeqCst)
}

impl Client {
    #[cachier(backend = "memory", ignore = [self])]
    async fn user(&self, id: u64) -> Result<String, String> {
        USERS[id as usize].fetch_add(1, Ordering::SeqCst);
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        Ok(format!("{}/users/{id}", self.base))
    }

    /// `next_time` refreshes with an owned copy of the client.
    #[cachier(backend = "memory", ignore = [self], stale_after = "0s", next_time)]
    async fn status(&self, id: u64) -> String {
        let n = STATUSES.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::task::yield_now().await;
        format!("{} {id} #{n}", self.base)
    }
}

static STATUSES: AtomicU64 = AtomicU64::new(0);

#[test]
fn an_async_method_joined_on_one_thread_runs_once() {
    let client = Client {
        base: "https://api".into(),
    };
    let before = user_runs(1);
    let (a, b, c) =
        runtime().block_on(async { tokio::join!(client.user(1), client.user(1), client.user(1)) });
    assert_eq!((a.clone(), b, c), (a.clone(), a.clone(), a));
    assert_eq!(user_runs(1) - before, 1);
}

#[test]
fn an_async_method_is_single_flight_across_the_threads_of_a_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let client = std::sync::Arc::new(Client {
        base: "https://api".into(),
    });
    let before = user_runs(2);
    let pages = runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                // A `Send` body gives a `Send` future: it can be spawned.
                tokio::spawn(async move { client.user(2).await })
            })
            .collect();
        let mut pages = Vec::new();
        for task in tasks {
            pages.push(task.await.unwrap().unwrap());
        }
        pages
    });
    assert!(pages.iter().all(|page| page == "https://api/users/2"));
    assert_eq!(user_runs(2) - before, 1);
}

#[test]
fn scoped_options_hold_across_awaits_for_async_methods() {
    let client = Client {
        base: "https://api".into(),
    };
    runtime().block_on(async {
        client.user(3).await.unwrap();
        let before = user_runs(3);
        let overwrite = CallOptions::new().overwrite_cache(true);
        let page = cachier::with_options_async(overwrite, async {
            tokio::task::yield_now().await;
            client.user(3).await
        });
        assert_eq!(page.await, Ok("https://api/users/3".into()));
        assert_eq!(user_runs(3) - before, 1, "the scoped call recomputed");
        client.user(3).await.unwrap();
        assert_eq!(user_runs(3) - before, 1, "outside the scope, a hit");
    });
}

#[test]
fn next_time_refreshes_an_async_method_with_a_copy_of_self() {
    let client = Client { base: "b".into() };
    runtime().block_on(async {
        assert_eq!(client.status(1).await, "b 1 #1");
        assert_eq!(client.status(1).await, "b 1 #1", "stale, returned at once");
        cachier::cache_of!(Client::status)
            .wait_for_background_async()
            .await;
        assert_eq!(STATUSES.load(Ordering::SeqCst), 2);
    });
}

static DECODED: AtomicU64 = AtomicU64::new(0);

/// A generic `async fn`: its type argument is part of the key.
#[cachier(backend = "memory")]
async fn decode<T: serde::de::DeserializeOwned + serde::Serialize + Send + 'static>(text: &str) -> Option<T> {
    DECODED.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    serde_json_like(text)
}

fn serde_json_like<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    let number: u64 = text.parse().ok()?;
    T::deserialize(serde::de::value::U64Deserializer::<serde::de::value::Error>::new(
        number,
    ))
    .ok()
}

#[test]
fn a_generic_async_fn_keeps_its_instantiations_apart() {
    runtime().block_on(async {
        assert_eq!(decode::<u8>("7").await, Some(7u8));
        assert_eq!(decode::<u64>("7").await, Some(7u64));
        assert_eq!(decode::<u8>("7").await, Some(7u8));
        assert_eq!(decode::<u8>("300").await, None, "not a u8: not cached");
    });
    assert_eq!(DECODED.load(Ordering::SeqCst), 3);
    assert_eq!(cachier::cache_of!(decode::<u8>).info().hits, 1);
}
