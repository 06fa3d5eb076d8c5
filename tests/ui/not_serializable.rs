use cachier::cachier;

struct Connection;

#[cachier]
fn rows(conn: &Connection, table: &str) -> u64 {
    table.len() as u64
}


struct Report;

#[cachier]
fn report(day: u32) -> Result<Report, String> {
    Ok(Report)
}

fn main() {}
