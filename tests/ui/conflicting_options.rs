use cachier::cachier;

#[cachier(backend = "memory", cache_dir = "/tmp/x", cleanup_interval = "1h")]
fn f(x: u64) -> u64 {
    x
}

#[cachier(allow_none)]
fn g(x: u64) -> u64 {
    x
}

fn main() {}
