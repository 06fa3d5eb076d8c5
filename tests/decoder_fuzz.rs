//! A fuzz campaign over the entry decoder, through the file core and the engine
//! as a cached call uses them: whatever bytes an entry file holds (arbitrary
//! files, or arbitrary values inside a valid envelope, length prefixes of
//! every size among them), a call never panics or aborts, never makes one
//! allocation beyond a bound, and returns either its own result or the value
//! the stored bytes decode to, every byte of them used. (Not necessarily a
//! value that encodes back to them: bincode reads a length written wider
//! than it needs, `[0xfb, 23, 0]` for 23, as the length it is.)

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use cachier::{CallOptions, Entry, FileCore, FunctionCache, Key, Plain};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Records the largest single allocation each thread asks for.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// serde preallocates at most 1 MiB of elements for a sequence or map (a hash
/// map's table rounds that up to under 2 MiB); bincode's limit lets a length
/// prefix reserve at most 64 times the value's length.
fn bound(value_len: usize) -> usize {
    (2 << 20) + 64 * value_len.max(1024)
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Default)]
enum Shape {
    #[default]
    Empty,
    Text(String),
    Numbers {
        values: Vec<u64>,
        label: Option<String>,
    },
}

fn scratch(name: &str) -> PathBuf {
    support::emptied_scratch("decoder_fuzz", name)
}

/// Stores `bytes` for one key of a `T`-returning function (as a whole entry
/// file if `raw`, else as the value inside a valid envelope), calls the
/// function, and checks what came back and what was allocated.
fn check<T>(cache: &FunctionCache, raw: bool, bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + Default + 'static,
{
    let key: Key = cache.key(&0u8).unwrap();
    if raw {
        // As a process that does not hold this key's entry in memory sees the
        // file (one that does sees a file written without cachier within a second).
        cache.clear().unwrap();
        let dir = cache.dpath().unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{key}.cachier")), bytes).unwrap();
    } else {
        cache
            .core()
            .set(&key, &Entry::new(SystemTime::now(), bytes))
            .unwrap();
    }
    LARGEST.set(0);
    let got = cache
        .call(&CallOptions::DEFAULT, Ok(key), || Plain(T::default()))
        .0;
    let largest = LARGEST.get();
    prop_assert!(
        largest <= bound(bytes.len()),
        "allocated {largest} bytes for a {}-byte input",
        bytes.len()
    );
    if got != T::default() {
        let decoded = bincode::serde::decode_from_slice::<T, _>(bytes, bincode::config::standard());
        prop_assert!(
            !raw && matches!(&decoded, Ok((value, used)) if *value == got && *used == bytes.len()),
            "served {got:?}, which is not what the stored bytes decode to"
        );
    }
    Ok(())
}

/// Bytes that start like a bincode length prefix (of every width) more often
/// than chance would.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefixed = (
        prop::sample::select(vec![0xfb_u8, 0xfc, 0xfd, 0xfe]),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(marker, len, tail)| {
            let mut bytes = vec![marker];
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend(tail);
            bytes
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..256), prefixed]
}

fn caches() -> [FunctionCache; 5] {
    let cache = |name: &str| {
        FunctionCache::builder(format!("fuzz::{name}"))
            .core(FileCore::new(scratch(name)))
            .build()
    };
    [
        cache("string"),
        cache("bytes"),
        cache("strings"),
        cache("map"),
        cache("shape"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn stored_bytes_never_crash_or_fool_a_call(raw in any::<bool>(), bytes in hostile_bytes()) {
        thread_local! {
            static CACHES: [FunctionCache; 5] = caches();
        }
        CACHES.with(|[string, bytes_, strings, map, shape]| {
            check::<String>(string, raw, &bytes)?;
            check::<Vec<u8>>(bytes_, raw, &bytes)?;
            check::<Vec<String>>(strings, raw, &bytes)?;
            check::<HashMap<String, Vec<u64>>>(map, raw, &bytes)?;
            check::<Shape>(shape, raw, &bytes)
        })?;
    }
}

#[test]
fn the_bound_catches_a_length_prefix_decoded_without_limit() {
    // The attack the bound is about: bincode without a limit reserves what a
    // prefix says. Checked here so that the campaign above cannot pass vacuously.
    let mut bytes = vec![0xfc];
    bytes.extend_from_slice(&(64u32 << 20).to_le_bytes());
    LARGEST.set(0);
    let unbounded: Result<(String, usize), _> =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard());
    assert!(unbounded.is_err());
    assert!(LARGEST.get() > bound(bytes.len()), "{}", LARGEST.get());
}
