//! The runtime of [cachier](https://docs.rs/cachier-rs): persistent,
//! stale-aware, cross-process memoization.
//!
//! Most users want the `cachier` crate and its `#[cachier]` attribute, which
//! builds on this one. Here live:
//!
//! - [`FunctionCache`], the engine every cached call goes through: lookups,
//!   staleness, `next_time` refreshes, single-flight across threads and
//!   processes, statistics, and the rule that cache failures never become caller
//!   failures;
//! - the [`Core`] trait and its built-in backends, [`FileCore`] (the default)
//!   and [`MemoryCore`], with feature `mongo` the `MongoCore`, with feature
//!   `redis` the `RedisCore` and with feature `sql` the `SqlCore`;
//! - [`Key`]s, SHA-1 digests of a [`canonical`] encoding of the arguments;
//! - process-wide [`GlobalParams`] and the [`disable_caching`] switch.
//!
//! ```
//! use cachier_core::{Backend, CallOptions, FunctionCache, Plain};
//! let cache = FunctionCache::builder("doc::double").backend(Backend::Memory).build();
//! let double = |x: u32| cache.call(&CallOptions::DEFAULT, cache.key(&x), || Plain(2 * x)).0;
//! assert_eq!((double(4), double(4)), (8, 8));
//! assert_eq!(cache.info().recalculations, 1);
//! ```

// docs.rs shows which feature enables each gated item.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(unix))]
compile_error!("cachier supports Unix-like systems (Linux, macOS, the BSDs) only for now");

mod budget;
pub mod canonical;
mod clock;
mod code;
mod codec;
mod config;
#[cfg(feature = "contract")]
pub mod contract;
mod cores;
mod engine;
mod entry;
mod error;
mod key;
pub mod metrics;
mod options;
mod outcome;
mod scope;
pub mod site;
mod stats;

pub use crate::budget::Budget;
pub use crate::code::Code;
pub use crate::codec::MAX_VALUE_LEN;
pub use crate::config::{
    Backend, GlobalParams, caching_enabled, disable_caching, enable_caching, global_params, set_global_params,
};
#[cfg(any(feature = "mongo", feature = "redis", feature = "sql"))]
pub use crate::cores::catalog;
pub use crate::cores::file;
pub use crate::cores::file::{FileCore, Sharing};
pub use crate::cores::memory::MemoryCore;
#[cfg(feature = "mongo")]
pub use crate::cores::mongo::{MongoCore, MongoParams};
#[cfg(feature = "redis")]
pub use crate::cores::redis::{RedisCore, RedisParams};
#[cfg(feature = "sql")]
pub use crate::cores::sql::{SqlCore, SqlParams};
pub use crate::cores::{Claim, Core};
#[cfg(feature = "async")]
pub use crate::engine::TaskJob;
pub use crate::engine::{FunctionCache, FunctionCacheBuilder, FunctionOptions, Job, functions};
pub use crate::entry::Entry;
pub use crate::error::{Error, Result};
pub use crate::key::{Key, KeyHasher, KeyMap, KeySpace};
pub use crate::options::CallOptions;
pub use crate::outcome::{OkOnly, Outcome, Plain, SomeOnly};
pub use crate::scope::{Scoped, with_options, with_options_async};
pub use crate::stats::{CacheInfo, HIT_SAMPLING, Latency};
/// The MongoDB driver the MongoDB core is built on, for writing `mongetter`s
/// against the same version.
#[cfg(feature = "mongo")]
pub use mongodb;
/// The Redis client the Redis core is built on, for writing `redis_client`s
/// with the same version.
#[cfg(feature = "redis")]
pub use redis;
