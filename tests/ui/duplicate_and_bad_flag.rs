use cachier::cachier;

#[cachier(backend = "memory", backend = "file", next_time = "yes")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
