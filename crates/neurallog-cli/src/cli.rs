//! Command-line arguments (parsed by clap, then validated by each command) and dispatch.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use neurallog_server::config::{Flags, ServerConfig};

use crate::{admin, bench, logs};

/// NeuralLog: a secure, multi-tenant log server and its command-line client.
#[derive(Debug, Parser)]
#[command(name = "neurallog", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the log server.
    Serve(ServeArgs),
    /// Work with logs on a server.
    #[command(subcommand)]
    Logs(logs::LogsCommand),
    /// Manage tenants (system key).
    #[command(subcommand)]
    Tenants(admin::TenantsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Read and verify the audit trail.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// Measure ingest, query, search, memory and disk figures (spec §9).
    Bench(bench::BenchArgs),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Write an encrypted, integrity-checked archive of one or every tenant (reads the
    /// configured storage directly; needs NEURALLOG_BACKUP_KEY).
    Backup(crate::backup::BackupArgs),
    /// Restore an archive written by `backup` into the configured storage (either backend).
    Restore(crate::backup::RestoreArgs),
    /// Show or change the tenant's retention periods on a server.
    #[command(subcommand)]
    Retention(crate::maintenance::RetentionCommand),
    /// Erase every event whose field equals a value (GDPR) on a server.
    Erase(crate::maintenance::EraseArgs),
    /// Inspect the server configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `neurallog serve` flags; each also has an environment variable (spec §2).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (also NEURALLOG_CONFIG).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// API port (PORT, default 3030).
    #[arg(long)]
    pub port: Option<String>,
    /// Listen address (NEURALLOG_BIND, default 127.0.0.1).
    #[arg(long)]
    pub bind: Option<String>,
    /// Embedded storage directory (NEURALLOG_DATA_DIR, default ./data).
    #[arg(long)]
    pub data_dir: Option<String>,
    /// Diagnostics level (LOG_LEVEL, RUST_LOG syntax, default info).
    #[arg(long)]
    pub log_level: Option<String>,
}

impl ServeArgs {
    fn flags(&self) -> Flags {
        Flags {
            config: self.config.clone(),
            port: self.port.clone(),
            bind: self.bind.clone(),
            data_dir: self.data_dir.clone(),
            log_level: self.log_level.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Resolve the configuration as `serve` would and print it, secrets redacted.
    Show(ServeArgs),
}

/// Where a client command connects.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Server URL.
    #[arg(
        long,
        env = "NEURALLOG_URL",
        default_value = "http://127.0.0.1:3030",
        global = true
    )]
    pub url: String,
    /// API key (sent as X-API-Key).
    #[arg(long, env = "NEURALLOG_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Output format; `table` is for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Auto, global = true)]
    pub output: OutputFormat,
}

/// How a client command trusts an `https://` server and proves who it is (mTLS).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM bundle of CAs to trust besides the system's (a private CA, a self-signed server).
    #[arg(long, env = "NEURALLOG_CA_CERT", value_name = "FILE", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate chain, for a server that requires client certificates.
    #[arg(
        long,
        env = "NEURALLOG_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        env = "NEURALLOG_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Reads the files; errors name the option and the file (never the key's content).
    pub fn options(&self) -> anyhow::Result<neurallog_client::TlsOptions> {
        let read = |opt: &str, p: &PathBuf| {
            std::fs::read(p).with_context(|| format!("{opt}: cannot read {}", p.display()))
        };
        let ca_pem = self
            .ca_cert
            .as_ref()
            .map(|p| read("--ca-cert", p))
            .transpose()?;
        let identity_pem = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => Some((read("--client-cert", c)?, read("--client-key", k)?)),
            _ => None,
        };
        Ok(neurallog_client::TlsOptions {
            ca_pem,
            identity_pem,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table on a terminal, JSON otherwise.
    Auto,
    Table,
    Json,
}

/// Resolves the server configuration from flags, the environment (with `vault:` references
/// read from Vault) and the config file.
pub async fn server_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    // Variables that are not valid UTF-8 cannot be settings; they are skipped.
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    Ok(ServerConfig::resolve_with_secrets(&args.flags(), &vars).await?)
}

fn init_tracing(level: &str) {
    // The storage engine's own info lines (segment flushes) are noise at the default level.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .unwrap_or_else(|| format!("{level},fjall=warn,lsm_tree=warn"));
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the parsed command.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = server_config(&args).await?;
            init_tracing(&config.log_level);
            for finding in config.insecure_settings() {
                tracing::warn!("insecure setting: {finding}");
            }
            neurallog_server::run(config, neurallog_server::shutdown_signal()).await
        }
        Command::Logs(cmd) => logs::run(cmd).await,
        Command::Tenants(cmd) => admin::tenants(cmd).await,
        Command::Keys(cmd) => admin::keys(cmd).await,
        Command::Audit(cmd) => admin::audit(cmd).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Backup(args) => crate::backup::backup(args).await,
        Command::Restore(args) => crate::backup::restore(args).await,
        Command::Retention(cmd) => crate::maintenance::retention(cmd).await,
        Command::Erase(args) => crate::maintenance::erase(args).await,
        Command::Openapi => {
            println!("{}", neurallog_server::openapi::json());
            Ok(())
        }
        Command::Config(ConfigCommand::Show(args)) => {
            let config = server_config(&args).await?;
            for (k, v) in config.redacted() {
                println!("{k} = {v}");
            }
            Ok(())
        }
    }
}
