use cachier::cachier;

#[cachier(stale_after = "3 fortnights")]
fn f(x: u64) -> u64 {
    x
}

#[cachier(wait_for_calc_timeout = 60)]
fn g(x: u64) -> u64 {
    x
}

fn main() {}
