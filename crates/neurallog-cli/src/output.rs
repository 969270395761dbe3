//! Printing results: a table for people on a terminal, JSON for scripts.

use std::io::IsTerminal;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::cli::OutputFormat;

/// Whether to print tables.
pub fn wants_table(format: OutputFormat) -> bool {
    match format {
        OutputFormat::Table => true,
        OutputFormat::Json => false,
        OutputFormat::Auto => std::io::stdout().is_terminal(),
    }
}

/// Prints a value as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under a header.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    println!("{t}");
}

/// Shortens a cell for the table view.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
