use cachier::cachier;

#[cachier(max_entries = 0)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
