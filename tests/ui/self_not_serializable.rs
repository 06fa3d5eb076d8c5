use cachier::cachier;

struct Client {
    base: String,
}

impl Client {
    #[cachier(backend = "memory")]
    fn user(&self, id: u64) -> String {
        format!("{}/users/{id}", self.base)
    }
}

fn main() {}
