use cachier::cachier;

#[cachier(backend = "memcached")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
