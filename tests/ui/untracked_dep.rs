use cachier::cachier;

fn helper(x: u64) -> u64 {
    x * 2
}

#[cachier(deps = [helper])]
fn features(x: u64) -> u64 {
    helper(x)
}

fn main() {}
