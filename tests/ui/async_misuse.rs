use std::rc::Rc;

use cachier::cachier;

// `local` is for async functions only.
#[cachier(local)]
fn sync_local(x: u64) -> u64 {
    x
}

// Named lifetimes on an async fn are not supported yet.
#[cachier]
async fn named<'a>(text: &'a str) -> usize {
    text.len()
}

// A future that is not `Send`, called as `f(..)`, needs `local`.
#[cachier(backend = "memory")]
async fn not_send(x: u64) -> u64 {
    let shared = Rc::new(x);
    std::future::ready(()).await;
    *shared
}

fn main() {}
