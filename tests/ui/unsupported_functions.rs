use cachier::cachier;

#[cachier]
fn generic<T: serde::Serialize>(x: T) -> u64 {
    0
}

#[cachier]
fn pattern((a, b): (u64, u64)) -> u64 {
    a + b
}

#[cachier(next_time)]
fn mutable(buf: &mut Vec<u8>) -> usize {
    buf.len()
}

struct S;

impl S {
    #[cachier]
    fn method(&self) -> u64 {
        0
    }
}

fn main() {}
