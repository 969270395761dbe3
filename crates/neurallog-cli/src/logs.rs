//! `neurallog logs …`: the client commands against a server.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use neurallog_client::{Client, Framing};
use neurallog_core::Entry;

use crate::cli::Connection;
use crate::output::{self, clip, wants_table};

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Append NDJSON events from a file or stdin.
    Append {
        /// Log name.
        log: String,
        /// NDJSON file; stdin when absent or `-`.
        #[arg(long, short)]
        file: Option<PathBuf>,
        /// Events per request.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        #[command(flatten)]
        conn: Connection,
    },
    /// Read a log newest first, or one entry by id.
    Get {
        log: String,
        id: Option<String>,
        #[command(flatten)]
        range: RangeArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Search one or all logs.
    Search {
        /// Case-insensitive text.
        query: Option<String>,
        /// Only this log.
        #[arg(long)]
        log: Option<String>,
        /// Typed field filter PATH=VALUE (repeatable), e.g. data.status=500.
        #[arg(long = "field", value_name = "PATH=VALUE")]
        fields: Vec<String>,
        #[command(flatten)]
        range: RangeArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// List logs.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a log, or one entry by id.
    Delete {
        log: String,
        id: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Counts, bytes and time span of the tenant or of one log.
    Stats {
        log: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// Earliest entry time (RFC 3339 or epoch ms).
    #[arg(long)]
    pub since: Option<String>,
    /// Latest entry time.
    #[arg(long)]
    pub until: Option<String>,
    /// Page size (1-10000).
    #[arg(long)]
    pub limit: Option<usize>,
    /// `next_cursor` of a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl RangeArgs {
    fn params(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                p.push((k.to_owned(), v.clone()));
            }
        };
        add("since", &self.since);
        add("until", &self.until);
        add("cursor", &self.cursor);
        if let Some(l) = self.limit {
            p.push(("limit".into(), l.to_string()));
        }
        p
    }
}

fn client(conn: &Connection) -> anyhow::Result<Client> {
    Ok(Client::with_tls(
        &conn.url,
        conn.api_key.clone(),
        &conn.tls.options()?,
    )?)
}

fn entry_rows(entries: &[Entry], with_log: bool) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|e| {
            let mut row = vec![
                e.id.to_string(),
                neurallog_core::time::format_ms(e.timestamp),
            ];
            if with_log {
                row.push(e.name.to_string());
            }
            row.push(clip(e.data.get(), 120));
            row
        })
        .collect()
}

/// Runs a `logs` subcommand.
pub async fn run(cmd: LogsCommand) -> anyhow::Result<()> {
    match cmd {
        LogsCommand::Append {
            log,
            file,
            batch_size,
            conn,
        } => append(&client(&conn)?, &log, file, batch_size, &conn).await,
        LogsCommand::Get {
            log,
            id,
            range,
            conn,
        } => {
            let c = client(&conn)?;
            match id {
                Some(id) => {
                    let r = c.get(&log, &id).await?;
                    if wants_table(conn.output) {
                        output::table(
                            &["id", "timestamp", "data"],
                            entry_rows(std::slice::from_ref(&r.entry), false),
                        );
                        Ok(())
                    } else {
                        output::json(&r)
                    }
                }
                None => {
                    let r = c.read(&log, &range.params()).await?;
                    if wants_table(conn.output) {
                        output::table(&["id", "timestamp", "data"], entry_rows(&r.entries, false));
                        if let Some(next) = &r.next_cursor {
                            eprintln!("more: --cursor {next}");
                        }
                        Ok(())
                    } else {
                        output::json(&r)
                    }
                }
            }
        }
        LogsCommand::Search {
            query,
            log,
            fields,
            range,
            conn,
        } => {
            let mut params = range.params();
            if let Some(q) = query {
                params.push(("query".into(), q));
            }
            if let Some(l) = log {
                params.push(("log_name".into(), l));
            }
            for f in fields {
                let (path, value) = f
                    .split_once('=')
                    .with_context(|| format!("--field '{f}' must be PATH=VALUE"))?;
                params.push((format!("field.{path}"), value.to_owned()));
            }
            let r = client(&conn)?.search(&params).await?;
            if wants_table(conn.output) {
                let entries: Vec<Entry> = r.results.iter().map(|h| h.entry.clone()).collect();
                output::table(
                    &["id", "timestamp", "log", "data"],
                    entry_rows(&entries, true),
                );
                if let Some(next) = &r.next_cursor {
                    eprintln!("more: --cursor {next}");
                }
                Ok(())
            } else {
                output::json(&r)
            }
        }
        LogsCommand::List { conn } => {
            let r = client(&conn)?.list_logs().await?;
            if wants_table(conn.output) {
                output::table(&["log"], r.logs.iter().map(|l| vec![l.clone()]).collect());
                Ok(())
            } else {
                output::json(&r)
            }
        }
        LogsCommand::Delete { log, id, conn } => {
            let c = client(&conn)?;
            let r = match id {
                Some(id) => c.delete_entry(&log, &id).await?,
                None => c.delete_log(&log).await?,
            };
            if wants_table(conn.output) {
                println!("deleted {} entries", r.deleted);
                Ok(())
            } else {
                output::json(&r)
            }
        }
        LogsCommand::Stats { log, conn } => {
            let c = client(&conn)?;
            let stat_row = |name: &str, s: &neurallog_core::api::LogStats| {
                vec![
                    name.to_owned(),
                    s.count.to_string(),
                    s.bytes.to_string(),
                    s.first_timestamp.clone().unwrap_or_default(),
                    s.last_timestamp.clone().unwrap_or_default(),
                ]
            };
            let header = ["log", "count", "bytes", "first", "last"];
            match log {
                Some(l) => {
                    let r = c.log_statistics(&l).await?;
                    if wants_table(conn.output) {
                        output::table(&header, vec![stat_row(&r.name, &r.stats)]);
                        Ok(())
                    } else {
                        output::json(&r)
                    }
                }
                None => {
                    let r = c.statistics().await?;
                    if wants_table(conn.output) {
                        let mut rows: Vec<Vec<String>> =
                            r.logs.iter().map(|n| stat_row(&n.name, &n.stats)).collect();
                        rows.push(stat_row("(total)", &r.total));
                        output::table(&header, rows);
                        Ok(())
                    } else {
                        output::json(&r)
                    }
                }
            }
        }
    }
}

/// Streams NDJSON to the server in batches, with a progress bar on a terminal.
async fn append(
    c: &Client,
    log: &str,
    file: Option<PathBuf>,
    batch_size: usize,
    conn: &Connection,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&batch_size),
        "--batch-size must be from 1 to 10000"
    );
    let (reader, total): (Box<dyn Read + Send>, Option<u64>) = match &file {
        Some(p) if p.as_os_str() != "-" => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        _ => (Box::new(std::io::stdin()), None),
    };
    let bar = if std::io::stderr().is_terminal() && total.is_some_and(|t| t > 1_000_000) {
        let b = ProgressBar::new(total.unwrap_or(0));
        b.set_style(ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )?);
        b
    } else {
        ProgressBar::hidden()
    };
    let mut lines = BufReader::new(reader);
    let mut stored = 0usize;
    let mut batches = 0usize;
    let mut line_no = 0usize;
    loop {
        let mut body = Vec::new();
        let mut n = 0;
        let first_line = line_no + 1;
        while n < batch_size && body.len() < 4 * 1024 * 1024 {
            let before = body.len();
            let read = lines
                .read_until(b'\n', &mut body)
                .context("cannot read input")?;
            if read == 0 {
                break;
            }
            line_no += 1;
            bar.inc(read as u64);
            if body[before..].iter().all(u8::is_ascii_whitespace) {
                body.truncate(before);
            } else {
                n += 1;
            }
        }
        if n == 0 {
            break;
        }
        let r = c.append(log, body, Framing::Ndjson).await.with_context(|| {
            format!("batch starting at input line {first_line} was refused ({stored} events stored before it)")
        })?;
        stored += r.count;
        batches += 1;
    }
    bar.finish_and_clear();
    if wants_table(conn.output) {
        println!("appended {stored} events to {log} in {batches} requests");
        Ok(())
    } else {
        output::json(
            &serde_json::json!({"status": "success", "count": stored, "requests": batches}),
        )
    }
}
