use cachier::cachier;

#[cachier(backend = "memory", segments = true)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
