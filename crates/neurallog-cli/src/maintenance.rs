//! `neurallog retention get|set` and `neurallog erase`: retention settings and GDPR erasure on
//! a server, over HTTP (spec §6.3).

use anyhow::bail;
use clap::{Args, Subcommand};
use neurallog_client::Client;
use neurallog_core::retention::{ErasureRequest, RetentionResponse, RetentionUpdate};

use crate::cli::Connection;
use crate::output::{self, wants_table};

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Show the tenant's retention periods.
    Get {
        #[command(flatten)]
        conn: Connection,
    },
    /// Change the tenant's retention periods (the others are kept).
    Set {
        /// Default period in days for every log, or `none` to clear it.
        #[arg(long, value_name = "DAYS|none")]
        default_days: Option<String>,
        /// Period of one log, LOG=DAYS, or LOG=none to drop its rule (repeatable).
        #[arg(long = "log", value_name = "LOG=DAYS")]
        logs: Vec<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `neurallog erase`.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// Dotted path of the field, e.g. user.email.
    #[arg(long)]
    pub field: String,
    /// The value: a number, true/false, or text (quote it as JSON to force text: '"500"').
    #[arg(long)]
    pub value: String,
    /// Only this log (repeatable; default: every log).
    #[arg(long = "log")]
    pub logs: Vec<String>,
    /// Confirm: erased events cannot be brought back.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub conn: Connection,
}

fn days(text: &str) -> anyhow::Result<Option<u64>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(d) => Ok(Some(d)),
        Err(_) => bail!("'{text}' is not a number of days (or none)"),
    }
}

fn show(r: &RetentionResponse, table: bool) -> anyhow::Result<()> {
    if !table {
        return output::json(r);
    }
    let d = |v: Option<u64>| v.map_or("none".to_owned(), |d| format!("{d} days"));
    println!("default: {}", d(r.default_days));
    println!("server default: {}", d(r.server_default_days));
    let rows = r
        .logs
        .iter()
        .map(|(l, d)| vec![l.clone(), d.to_string()])
        .collect::<Vec<_>>();
    if !rows.is_empty() {
        output::table(&["log", "days"], rows);
    }
    Ok(())
}

pub async fn retention(cmd: RetentionCommand) -> anyhow::Result<()> {
    match cmd {
        RetentionCommand::Get { conn } => {
            let c = Client::new(&conn.url, conn.api_key.clone())?;
            show(&c.retention().await?, wants_table(conn.output))
        }
        RetentionCommand::Set {
            default_days,
            logs,
            conn,
        } => {
            let c = Client::new(&conn.url, conn.api_key.clone())?;
            let now = c.retention().await?;
            let mut update = RetentionUpdate {
                default_days: now.default_days,
                logs: now.logs.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            };
            if let Some(d) = default_days {
                update.default_days = days(&d)?;
            }
            for rule in logs {
                let Some((log, d)) = rule.split_once('=') else {
                    bail!("--log takes LOG=DAYS, got '{rule}'");
                };
                update.logs.insert(log.to_owned(), days(d)?);
            }
            show(&c.set_retention(&update).await?, wants_table(conn.output))
        }
    }
}

pub async fn erase(args: EraseArgs) -> anyhow::Result<()> {
    if !args.yes {
        bail!("erasure cannot be undone: add --yes to confirm");
    }
    // Typed like a search's field filter: JSON scalars as such, anything else as text.
    let value = match serde_json::from_str::<serde_json::Value>(&args.value) {
        Ok(
            v @ (serde_json::Value::Number(_)
            | serde_json::Value::Bool(_)
            | serde_json::Value::String(_)),
        ) => v,
        _ => serde_json::Value::String(args.value.clone()),
    };
    let req = ErasureRequest {
        field: args.field,
        value,
        logs: (!args.logs.is_empty()).then_some(args.logs),
    };
    let c = Client::new(&args.conn.url, args.conn.api_key.clone())?;
    let r = c.erase(&req).await?;
    if wants_table(args.conn.output) {
        println!("erased {} events", r.erased);
        for (log, n) in &r.logs {
            println!("  {log}: {n}");
        }
        Ok(())
    } else {
        output::json(&r)
    }
}
