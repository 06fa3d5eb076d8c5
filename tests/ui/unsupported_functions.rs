use cachier::cachier;

#[cachier]
fn pattern((a, b): (u64, u64)) -> u64 {
    a + b
}

#[cachier(next_time)]
fn mutable(buf: &mut Vec<u8>) -> usize {
    buf.len()
}

fn main() {}
