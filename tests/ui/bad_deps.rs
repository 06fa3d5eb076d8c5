use cachier::cachier;

fn helper(x: u64) -> u64 {
    x * 2
}

#[cachier(deps = "helper")]
fn not_a_list(x: u64) -> u64 {
    helper(x)
}

#[cachier::track(stale_after = "1h")]
fn tracked_with_a_caching_option(x: u64) -> u64 {
    x
}

#[cachier(version = "2", body_changes = "keep")]
fn both(x: u64) -> u64 {
    x
}

fn main() {}
