use cachier::cachier;

#[cachier(backend = "sqlite")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
