use cachier::cachier;

#[cachier(backend = "redis", max_bytes = "2GB")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
