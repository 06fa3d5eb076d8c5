use cachier::cachier;

#[cachier(stale_afterr = "1d")]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
