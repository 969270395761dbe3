//! `neurallog tenants …`, `neurallog keys …`, `neurallog audit …`: the administration API
//! (spec §4.5) from the command line. Tables on a terminal, JSON otherwise or with
//! `--output json`.

use clap::Subcommand;
use neurallog_client::Client;
use neurallog_core::admin::{CreateKeyRequest, CreateTenantRequest, KeyInfo, RotateKeyRequest};

use crate::cli::Connection;
use crate::output::{self, clip, wants_table};

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant (needs the system key).
    Create {
        /// Tenant id: a DNS label.
        id: String,
        /// A name for people.
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a tenant with all its data and keys.
    Delete {
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; the key is printed once.
    Create {
        /// A label for people.
        name: String,
        /// reader, writer, admin, auditor, system, or a custom role.
        #[arg(long)]
        role: String,
        /// Log-name pattern the key is limited to (repeatable), e.g. app-*.
        #[arg(long = "log", value_name = "PATTERN")]
        logs: Vec<String>,
        /// Lifetime: seconds or 30s, 10m, 24h, 30d.
        #[arg(long)]
        expires_in: Option<String>,
        /// Tenant of the key (system key only).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List keys (never their secrets).
    List {
        /// Whose keys (system key only).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a key by id.
    Revoke {
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Replace a key by a new one; the old one works for the grace period.
    Rotate {
        id: String,
        /// How long the old key keeps working (default 24h).
        #[arg(long)]
        grace: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, oldest first.
    List {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// e.g. key:0123456789ab, bootstrap, system.
        #[arg(long)]
        principal: Option<String>,
        /// e.g. logs.append, keys.create.
        #[arg(long)]
        action: Option<String>,
        /// success, denied or failure.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        cursor: Option<String>,
        /// The global trail (system actions, unauthenticated refusals; system key).
        #[arg(long)]
        global: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Verify the hash chain of the audit trail; exits non-zero when it is broken.
    Verify {
        #[arg(long)]
        global: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

fn client(conn: &Connection) -> anyhow::Result<Client> {
    Ok(Client::new(&conn.url, conn.api_key.clone())?)
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

pub async fn tenants(cmd: TenantsCommand) -> anyhow::Result<()> {
    match cmd {
        TenantsCommand::Create {
            id,
            display_name,
            conn,
        } => {
            let r = client(&conn)?
                .create_tenant(&CreateTenantRequest { id, display_name })
                .await?;
            if wants_table(conn.output) {
                println!("created tenant {}", r.tenant.id);
                Ok(())
            } else {
                output::json(&r)
            }
        }
        TenantsCommand::List { conn } => {
            let r = client(&conn)?.list_tenants().await?;
            if wants_table(conn.output) {
                let rows = r
                    .tenants
                    .iter()
                    .map(|t| vec![t.id.clone(), opt(&t.display_name), opt(&t.created_at)])
                    .collect();
                output::table(&["id", "display name", "created"], rows);
                Ok(())
            } else {
                output::json(&r)
            }
        }
        TenantsCommand::Delete { id, conn } => {
            let r = client(&conn)?.delete_tenant(&id).await?;
            if wants_table(conn.output) {
                println!("deleted tenant {} ({} entries)", r.id, r.deleted);
                Ok(())
            } else {
                output::json(&r)
            }
        }
    }
}

fn key_rows(keys: &[KeyInfo]) -> Vec<Vec<String>> {
    keys.iter()
        .map(|k| {
            vec![
                k.id.clone(),
                clip(&k.name, 30),
                k.tenant.clone(),
                k.role.clone(),
                k.logs.as_ref().map_or("*".into(), |l| l.join(",")),
                opt(&k.expires_at),
                opt(&k.last_used),
            ]
        })
        .collect()
}

pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            name,
            role,
            logs,
            expires_in,
            tenant,
            conn,
        } => {
            let req = CreateKeyRequest {
                name,
                role,
                logs: (!logs.is_empty()).then_some(logs),
                expires_in,
                tenant,
            };
            let r = client(&conn)?.create_key(&req).await?;
            if wants_table(conn.output) {
                println!("key {} ({}, tenant {})", r.id, r.role, r.tenant);
                println!("{}", r.key);
                eprintln!("store the key now: it is not shown again");
                Ok(())
            } else {
                output::json(&r)
            }
        }
        KeysCommand::List { tenant, conn } => {
            let r = client(&conn)?.list_keys(tenant.as_deref()).await?;
            if wants_table(conn.output) {
                output::table(
                    &[
                        "id",
                        "name",
                        "tenant",
                        "role",
                        "logs",
                        "expires",
                        "last used",
                    ],
                    key_rows(&r.keys),
                );
                Ok(())
            } else {
                output::json(&r)
            }
        }
        KeysCommand::Revoke { id, conn } => {
            let r = client(&conn)?.revoke_key(&id).await?;
            if wants_table(conn.output) {
                println!("revoked key {}", r.id);
                Ok(())
            } else {
                output::json(&r)
            }
        }
        KeysCommand::Rotate { id, grace, conn } => {
            let r = client(&conn)?
                .rotate_key(&id, &RotateKeyRequest { grace })
                .await?;
            if wants_table(conn.output) {
                println!("key {} replaces {}", r.id, opt(&r.replaces));
                println!("{}", r.key);
                eprintln!(
                    "the old key works until {}; store the new key now",
                    opt(&r.replaced_key_expires_at)
                );
                Ok(())
            } else {
                output::json(&r)
            }
        }
    }
}

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::List {
            since,
            until,
            principal,
            action,
            outcome,
            limit,
            cursor,
            global,
            conn,
        } => {
            let mut params = Vec::new();
            for (k, v) in [
                ("since", since),
                ("until", until),
                ("principal", principal),
                ("action", action),
                ("outcome", outcome),
                ("cursor", cursor),
                ("limit", limit.map(|l| l.to_string())),
                ("scope", global.then(|| "global".to_owned())),
            ] {
                if let Some(v) = v {
                    params.push((k.to_owned(), v));
                }
            }
            let r = client(&conn)?.audit(&params).await?;
            if wants_table(conn.output) {
                let rows = r
                    .events
                    .iter()
                    .map(|e| {
                        vec![
                            e.seq.to_string(),
                            e.time.clone(),
                            opt(&e.principal),
                            e.action.clone(),
                            clip(&e.resource, 40),
                            format!("{} {}", e.outcome, e.status),
                            e.count.to_string(),
                            opt(&e.client),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "seq",
                        "time",
                        "principal",
                        "action",
                        "resource",
                        "outcome",
                        "calls",
                        "client",
                    ],
                    rows,
                );
                if let Some(next) = &r.next_cursor {
                    eprintln!("more: --cursor {next}");
                }
                Ok(())
            } else {
                output::json(&r)
            }
        }
        AuditCommand::Verify { global, conn } => {
            let params: Vec<(String, String)> = if global {
                vec![("scope".into(), "global".into())]
            } else {
                Vec::new()
            };
            let r = client(&conn)?.audit_verify(&params).await?;
            if wants_table(conn.output) {
                match &r.first_bad {
                    None => println!("audit trail verified: {} events", r.events),
                    Some(b) => println!(
                        "audit trail BROKEN: {} at seq {} (chain {}), {} events",
                        b.reason,
                        b.seq.map_or("-".into(), |s| s.to_string()),
                        b.chain,
                        r.events
                    ),
                }
            } else {
                output::json(&r)?;
            }
            anyhow::ensure!(r.verified, "the audit trail does not verify");
            Ok(())
        }
    }
}
