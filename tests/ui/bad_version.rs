use cachier::cachier;

#[cachier(version = 2024)]
fn numbered(x: u64) -> u64 {
    x
}

#[cachier(version = "")]
fn empty(x: u64) -> u64 {
    x
}

fn main() {}
