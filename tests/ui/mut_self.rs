use cachier::cachier;

#[derive(serde::Serialize)]
struct Counter {
    seen: u64,
}

impl Counter {
    #[cachier(backend = "memory")]
    fn bump(&mut self, by: u64) -> u64 {
        self.seen += by;
        self.seen
    }
}

fn main() {}
