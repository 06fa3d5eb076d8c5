use cachier::cachier;

#[cachier(backend = "redis")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
