//! Output for people: aligned tables, sizes and ages as they are read, and a
//! progress spinner on long walks when stderr is a terminal.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};

/// A borderless table with `header` (if any); columns after the first are
/// right-aligned.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    if !header.is_empty() {
        table.set_header(header.to_vec());
    }
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut().skip(1) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    table.to_string()
}

/// `1.2 MiB`.
pub fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// How long ago `seconds` (since 1970) was: `3d 4h`, `12m`, or `-`.
pub fn age(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds else {
        return "-".into();
    };
    let then = UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0));
    let ago = SystemTime::now().duration_since(then).unwrap_or_default();
    // The two largest units are enough to read an age.
    let rounded = Duration::from_secs(match ago.as_secs() {
        s if s >= 86_400 => s - s % 3600,
        s if s >= 3600 => s - s % 60,
        s => s,
    });
    format!("{} ago", humantime::format_duration(rounded))
}

/// A spinner saying what is being walked, shown only on a terminal.
pub fn spinner() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({pos} directories)")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
