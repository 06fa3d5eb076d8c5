use cachier::cachier;

#[cachier(ignore = [clinet])]
fn typo(client: u64, day: u32) -> u32 {
    day + client as u32
}

#[cachier(ignore = "client")]
fn not_a_list(client: u64) -> u64 {
    client
}


#[cachier(ignore = [self])]
fn not_a_method(day: u32) -> u32 {
    day
}

fn main() {}
