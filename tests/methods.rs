//! `#[cachier]` on methods (inherent and trait impls, sync) and generic
//! functions, as a user writes them: `self` in the key or ignored, the type
//! of `Self` in the identity, type arguments in the key, controls through
//! `cache_of!`, per-call options through `with_options`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use cachier::{CallOptions, cache_of, cachier, with_options};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("methods")
        .join(name)
}

static FEATURES: AtomicU64 = AtomicU64::new(0);

#[derive(Serialize)]
struct Model {
    weights_version: u32,
}

impl Model {
    /// `self` is part of the key: models with other weights never share.
    #[cachier(backend = "memory")]
    fn features(&self, text: &str) -> Vec<f32> {
        FEATURES.fetch_add(1, Ordering::SeqCst);
        vec![text.len() as f32, self.weights_version as f32]
    }
}

#[test]
fn a_serializable_self_is_part_of_the_key() {
    let runs = || FEATURES.load(Ordering::SeqCst);
    let (v1, v2) = (Model { weights_version: 1 }, Model { weights_version: 2 });
    assert_eq!(v1.features("abc"), vec![3.0, 1.0]);
    assert_eq!(v1.features("abc"), vec![3.0, 1.0]);
    assert_eq!(runs(), 1);
    assert_eq!(v2.features("abc"), vec![3.0, 2.0]);
    assert_eq!(Model { weights_version: 1 }.features("abc"), vec![3.0, 1.0]);
    assert_eq!(runs(), 2, "an equal self is a hit");
    assert_eq!(cache_of!(Model::features).info().hits, 2);
}

trait Scorer {
    fn score(&self, text: &str) -> u64;
}

static SCORES: AtomicU64 = AtomicU64::new(0);

#[derive(Serialize)]
struct Short;
#[derive(Serialize)]
struct Long;

// Two impls of one trait method in one module, with the same body: they
// never share entries, since the type of `Self` is part of the identity.
impl Scorer for Short {
    #[cachier(cache_dir = scratch("score"))]
    fn score(&self, text: &str) -> u64 {
        SCORES.fetch_add(1, Ordering::SeqCst);
        text.len() as u64 * std::mem::size_of_val(self) as u64 + type_id(self)
    }
}

impl Scorer for Long {
    #[cachier(cache_dir = scratch("score"))]
    fn score(&self, text: &str) -> u64 {
        SCORES.fetch_add(1, Ordering::SeqCst);
        text.len() as u64 * std::mem::size_of_val(self) as u64 + type_id(self)
    }
}

fn type_id<T: 'static>(_: &T) -> u64 {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<Short>() {
        1
    } else {
        2
    }
}

#[test]
fn trait_impls_for_two_types_never_share() {
    cache_of!(<Short as Scorer>::score).clear().unwrap();
    cache_of!(<Long as Scorer>::score).clear().unwrap();
    let before = SCORES.load(Ordering::SeqCst);
    assert_eq!(Short.score("ab"), 1);
    assert_eq!(Long.score("ab"), 2);
    assert_eq!(Short.score("ab"), 1);
    assert_eq!(Long.score("ab"), 2);
    assert_eq!(SCORES.load(Ordering::SeqCst) - before, 2);
    assert_eq!(cache_of!(<Short as Scorer>::score).info().hits, 1);
    assert_ne!(
        cache_of!(<Short as Scorer>::score).dpath(),
        cache_of!(<Long as Scorer>::score).dpath()
    );
}

struct Client {
    base: String,
}

static USERS: AtomicU64 = AtomicU64::new(0);

impl Client {
    /// `self` (not serializable) is left out of the key.
    #[cachier(backend = "memory", ignore = [self])]
    fn user(&self, id: u64) -> Result<String, String> {
        USERS.fetch_add(1, Ordering::SeqCst);
        if id == 0 {
            return Err("no user 0".into());
        }
        Ok(format!("{}/users/{id}", self.base))
    }
}

#[test]
fn an_ignored_self_needs_no_serialize_and_per_call_options_reach_methods() {
    let client = Client {
        base: "https://api".into(),
    };
    let runs = || USERS.load(Ordering::SeqCst);
    let before = runs();
    assert_eq!(client.user(7), Ok("https://api/users/7".into()));
    assert_eq!(
        Client { base: "other".into() }.user(7),
        Ok("https://api/users/7".into())
    );
    assert_eq!(runs() - before, 1, "self is not in the key");
    assert!(client.user(0).is_err());
    assert!(client.user(0).is_err());
    assert_eq!(runs() - before, 3, "errors are not cached");
    let overwrite = CallOptions::new().overwrite_cache(true);
    assert_eq!(
        with_options(&overwrite, || client.user(7)),
        Ok("https://api/users/7".into())
    );
    assert_eq!(runs() - before, 4, "the scoped call recomputed");
    assert_eq!(client.user(7), Ok("https://api/users/7".into()));
    assert_eq!(runs() - before, 4, "outside the scope, a hit again");
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Summary {
    count: usize,
    bytes: usize,
}

static SUMMARIES: AtomicU64 = AtomicU64::new(0);

#[cachier(cache_dir = scratch("summarize"))]
fn summarize<T: Serialize + DeserializeOwned + 'static>(rows: &[T]) -> Summary {
    SUMMARIES.fetch_add(1, Ordering::SeqCst);
    Summary {
        count: rows.len(),
        bytes: std::mem::size_of_val(rows),
    }
}

#[test]
fn instantiations_of_a_generic_function_never_share() {
    cache_of!(summarize::<u8>).clear().unwrap();
    let before = SUMMARIES.load(Ordering::SeqCst);
    assert_eq!(summarize::<u32>(&[1, 2]), Summary { count: 2, bytes: 8 });
    assert_eq!(summarize::<u64>(&[1, 2]), Summary { count: 2, bytes: 16 });
    assert_eq!(summarize(&[1u32, 2]), Summary { count: 2, bytes: 8 });
    assert_eq!(SUMMARIES.load(Ordering::SeqCst) - before, 2);
    assert_eq!(cache_of!(summarize::<u32>).info().hits, 1);
}

/// A wrapper generic over what it wraps: `Self` differs per instantiation,
/// and is part of the key.
#[derive(Clone, Serialize)]
struct Labelled<T> {
    label: String,
    value: T,
}

static DESCRIBED: AtomicU64 = AtomicU64::new(0);

impl<T: Serialize + std::fmt::Debug> Labelled<T> {
    #[cachier(backend = "memory", ignore = [self])]
    fn describe(&self, suffix: &str) -> String {
        DESCRIBED.fetch_add(1, Ordering::SeqCst);
        format!("{} = {:?}{suffix}", self.label, self.value)
    }
}

#[test]
fn a_generic_impl_keeps_each_self_type_apart() {
    let small = Labelled {
        label: "x".into(),
        value: 1u8,
    };
    let text = Labelled {
        label: "x".into(),
        value: "1",
    };
    let before = DESCRIBED.load(Ordering::SeqCst);
    assert_eq!(small.describe("!"), "x = 1!");
    assert_eq!(
        text.describe("!"),
        "x = \"1\"!",
        "self is ignored, but its type is not"
    );
    assert_eq!(small.describe("!"), "x = 1!");
    assert_eq!(DESCRIBED.load(Ordering::SeqCst) - before, 2);
    // One cache per impl, reached through any of its types.
    assert_eq!(cache_of!(Labelled::<u8>::describe).info().hits, 1);
    assert_eq!(cache_of!(Labelled::<&str>::describe).info().hits, 1);
}

static REFRESHES: AtomicU64 = AtomicU64::new(0);

impl Model {
    /// A stale value comes back at once; an owned copy of `self` refreshes it.
    #[cachier(backend = "memory", stale_after = "0s", next_time = true)]
    fn tokens(&self, text: &str) -> usize {
        REFRESHES.fetch_add(1, Ordering::SeqCst);
        text.len() + self.weights_version as usize
    }
}

impl Clone for Model {
    fn clone(&self) -> Self {
        Model {
            weights_version: self.weights_version,
        }
    }
}

#[test]
fn next_time_refreshes_a_method_with_a_copy_of_self() {
    let model = Model { weights_version: 10 };
    assert_eq!(model.tokens("abc"), 13);
    assert_eq!(
        model.tokens("abc"),
        13,
        "stale: served, refreshed in the background"
    );
    cache_of!(Model::tokens).wait_for_background();
    assert_eq!(REFRESHES.load(Ordering::SeqCst), 2);
    assert_eq!(cache_of!(Model::tokens).info().stale_hits, 1);
}

struct Store;

static LOADS: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// A persistent method cache, cleared before its first call.
    #[cachier(cache_dir = scratch("load"), ignore = [self])]
    fn load(&self, id: u32) -> u32 {
        LOADS.fetch_add(1, Ordering::SeqCst);
        id * 2
    }
}

#[test]
fn cache_of_reaches_a_methods_persistent_cache_before_its_first_call() {
    // At start-up: whatever an earlier run of this test stored goes.
    let cache = cache_of!(Store::load);
    cache.clear().unwrap();
    let dir = cache.dpath().expect("the file core has a directory");
    assert!(dir.parent().unwrap().ends_with("methods.Store.load"), "{dir:?}");
    assert_eq!(cache.info().recalculations, 0);
    assert_eq!(Store.load(1), 2);
    assert_eq!(Store.load(1), 2);
    assert_eq!(LOADS.load(Ordering::SeqCst), 1, "computed once, after the clear");
    assert_eq!(
        (cache.info().recalculations, cache.info().hits),
        (1, 1),
        "the same cache"
    );
}

/// An outer cached function calling an inner one: a scope's options apply
/// to the call made in the scope, not to the calls its body makes.
#[cachier(backend = "memory")]
fn inner(x: u64) -> u64 {
    INNER.fetch_add(1, Ordering::SeqCst);
    x + 1
}

static INNER: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory")]
fn outer(x: u64) -> u64 {
    inner(x) * 10
}

#[test]
fn scoped_options_do_not_reach_the_bodies_of_the_calls_they_scope() {
    assert_eq!(outer(1), 20);
    let before = (INNER.load(Ordering::SeqCst), outer.cache_info().recalculations);
    let overwrite = CallOptions::new().overwrite_cache(true);
    assert_eq!(with_options(&overwrite, || outer(1)), 20);
    assert_eq!(
        outer.cache_info().recalculations - before.1,
        1,
        "outer recomputed"
    );
    assert_eq!(INNER.load(Ordering::SeqCst), before.0, "inner was a hit");
    // An explicit call_with keeps its own options inside a scope.
    let ignore = CallOptions::new().ignore_cache(true);
    with_options(&ignore, || outer.call_with(&CallOptions::DEFAULT, 1));
    assert_eq!(
        outer.cache_info().recalculations - before.1,
        1,
        "call_with's default options: a hit"
    );
}

static SHIFTS: AtomicU64 = AtomicU64::new(0);

/// Const parameters are part of the key too.
#[cachier(backend = "memory")]
fn shift<const N: u32>(x: u64) -> u64 {
    SHIFTS.fetch_add(1, Ordering::SeqCst);
    x << N
}

#[test]
fn const_parameters_are_part_of_the_key() {
    assert_eq!(shift::<1>(3), 6);
    assert_eq!(shift::<2>(3), 12);
    assert_eq!(shift::<1>(3), 6);
    assert_eq!(SHIFTS.load(Ordering::SeqCst), 2);
}
