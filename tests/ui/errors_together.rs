use cachier::cachier;

// An option error and signature errors are reported by one compile.
#[cachier(backend = "disk", stale_after = "3 parsecs")]
const unsafe fn f(x: u64) -> u64 {
    x
}

fn main() {}
