//! `neurallog backup` and `neurallog restore` (spec §6.4): an encrypted, integrity-checked
//! archive of one or every tenant, read back into either backend.
//!
//! Both open the configured storage directly, resolved exactly like `serve` (`REDIS_URL`, or
//! the embedded store in `NEURALLOG_DATA_DIR`). The archive ([`archive`]) carries, inside its
//! encrypted stream, newline-delimited JSON records ([`Record`]): each tenant, its portable
//! settings, and every entry of every log with its original id and timestamp, then an `end`
//! record with the totals. Restore reads the whole archive twice: first authenticating every
//! chunk and checking every record without writing anything, then importing. A damaged,
//! truncated or foreign archive, or a wrong key, thus leaves the target untouched.

mod archive;
mod key;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use neurallog_core::query::ReadQuery;
use neurallog_core::time::now_ms;
use neurallog_core::{Entry, EntryId, LogName, TenantId};
use neurallog_server::config::Flags;
use neurallog_server::{ServerConfig, open_storage};
use neurallog_storage::{Scope, Storage};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use key::BackupKey;

/// Tenant metadata records a backup carries (space, key): the retention settings. API-key
/// records are credentials of one deployment (issue new keys after a restore), and wrapped
/// data keys must never leave their store (restored data is encrypted under the target's own
/// keys), so neither travels; nor does anything else kept beside them.
const PORTABLE_RECORDS: &[(&str, &str)] = &[("settings", "retention")];
/// Global metadata space listing the tenants (the tenant registry).
const TENANTS_SPACE: &str = "tenants";
/// Entries per archive record, and raw bytes after which a record is closed early.
const RECORD_ENTRIES: usize = 1000;
const RECORD_BYTES: usize = 4 * 1024 * 1024;
/// Longest record line accepted on restore.
const MAX_LINE: usize = 256 * 1024 * 1024;
const FILE_PREFIX: &str = "neurallog-backup-";
const FILE_SUFFIX: &str = ".nlbk";
const DAY_MS: i64 = 86_400_000;

/// Where the storage is: the same flags as `serve` (and the same environment).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// TOML configuration file (also NEURALLOG_CONFIG).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Embedded storage directory (NEURALLOG_DATA_DIR); ignored when REDIS_URL is set.
    #[arg(long)]
    pub data_dir: Option<String>,
}

impl StoreArgs {
    fn resolve(&self) -> anyhow::Result<ServerConfig> {
        let flags = Flags {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..Flags::default()
        };
        Ok(ServerConfig::resolve_for_storage(&flags, &|n| {
            std::env::var(n).ok()
        })?)
    }
}

/// `neurallog backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Archive file to write; an existing directory (or a path ending in `/`) means
    /// "a timestamped file in this directory", like --dir.
    #[arg(long, conflicts_with = "dir")]
    pub out: Option<PathBuf>,
    /// Directory to write a timestamped archive into (enables --keep / --keep-days).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Only this tenant (default: every tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// After a successful backup, keep only the newest N archives in the directory.
    #[arg(long)]
    pub keep: Option<usize>,
    /// After a successful backup, remove archives older than D days from the directory.
    #[arg(long)]
    pub keep_days: Option<u64>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `neurallog restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Archive written by `neurallog backup`.
    pub file: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// One line of the archive's plaintext, externally tagged (`{"entries": {…}}`): an internal
/// tag would make serde buffer the line, which raw event JSON cannot go through.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    Tenant {
        tenant: String,
        /// The tenant's registry record (base64), when it has one.
        #[serde(default)]
        registry: Option<String>,
    },
    Meta {
        tenant: String,
        space: String,
        key: String,
        /// base64
        value: String,
    },
    Entries {
        tenant: String,
        log: String,
        entries: Vec<ArchivedEntry>,
    },
    End {
        tenants: u64,
        logs: u64,
        entries: u64,
        meta: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchivedEntry {
    id: EntryId,
    /// Event time, epoch ms.
    ts: i64,
    data: Box<RawValue>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    tenants: u64,
    logs: u64,
    entries: u64,
    meta: u64,
}

fn progress(total: u64, what: &str) -> ProgressBar {
    // Drawn on stderr only when it is a terminal (indicatif hides itself otherwise).
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{what} [{{bar:30}}] {{pos}}/{{len}} entries ({{eta}} left)"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn tenants_of(store: &dyn Storage, config: &ServerConfig) -> anyhow::Result<Vec<TenantId>> {
    let mut out = vec![
        config
            .tenant
            .clone()
            .unwrap_or_else(TenantId::default_tenant),
    ];
    for (k, _) in store.meta_list(Scope::Global, TENANTS_SPACE).await? {
        if let Ok(t) = TenantId::new(k)
            && !out.contains(&t)
        {
            out.push(t);
        }
    }
    out.sort();
    Ok(out)
}

fn line(rec: &Record) -> anyhow::Result<Vec<u8>> {
    let mut v = serde_json::to_vec(rec)?;
    v.push(b'\n');
    Ok(v)
}

/// Where the archive goes: (final path, directory for retention).
fn destination(args: &BackupArgs, label: &str) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let dir = match (&args.dir, &args.out) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(o)) if o.is_dir() || o.as_os_str().to_string_lossy().ends_with('/') => {
            Some(o.clone())
        }
        (None, Some(_)) => None,
        (None, None) => bail!("say where the archive goes: --out FILE or --dir DIR"),
    };
    match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
            Ok((
                d.join(format!("{FILE_PREFIX}{label}-{stamp}{FILE_SUFFIX}")),
                Some(d),
            ))
        }
        None => {
            if args.keep.is_some() || args.keep_days.is_some() {
                bail!("--keep and --keep-days need a directory (--dir DIR or --out DIR)");
            }
            Ok((args.out.clone().unwrap_or_default(), None))
        }
    }
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let key = BackupKey::from_env(&|n| std::env::var(n).ok())?;
    if args.keep == Some(0) {
        bail!("--keep must be at least 1");
    }
    let config = args.store.resolve()?;
    // A mistyped data directory would otherwise be created empty and backed up as such.
    if config.redis_url.is_none() && !config.data_dir.join("store").exists() {
        bail!(
            "no NeuralLog store in {} (set NEURALLOG_DATA_DIR or REDIS_URL)",
            config.data_dir.display()
        );
    }
    let store = open_storage(&config).await?;
    let tenants = match &args.tenant {
        Some(t) => vec![
            TenantId::new(t.as_str())
                .map_err(|e| anyhow::anyhow!("invalid --tenant '{t}': {e}"))?,
        ],
        None => tenants_of(store.as_ref(), &config).await?,
    };
    let label = args.tenant.clone().unwrap_or_else(|| "all".into());
    let (path, dir) = destination(&args, &label)?;
    let partial = path.with_extension("nlbk.partial");
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let result = write_archive(store.clone(), &tenants, BufWriter::new(file), &key).await;
    let (totals, bytes) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &path)
        .with_context(|| format!("cannot move the archive to {}", path.display()))?;
    store.flush().await.ok();
    println!(
        "backup: {} tenant(s), {} log(s), {} entries, {} settings record(s), {} bytes -> {} (key {})",
        totals.tenants,
        totals.logs,
        totals.entries,
        totals.meta,
        bytes,
        path.display(),
        key.id()
    );
    if let Some(d) = dir {
        for removed in prune(&d, &label, &path, args.keep, args.keep_days)? {
            println!("removed old backup {}", removed.display());
        }
    }
    Ok(())
}

async fn write_archive(
    store: Arc<dyn Storage>,
    tenants: &[TenantId],
    out: BufWriter<File>,
    key: &BackupKey,
) -> anyhow::Result<(Totals, u64)> {
    let names = tenants.iter().map(|t| t.to_string()).collect();
    let mut w = archive::Writer::new(out, key, names, now_ms())?;
    let mut total_entries = 0;
    for t in tenants {
        total_entries += store
            .tenant_summary(t)
            .await?
            .iter()
            .map(|(_, s)| s.count)
            .sum::<u64>();
    }
    let bar = progress(total_entries, "backup");
    let mut totals = Totals::default();
    for t in tenants {
        let registry = store
            .meta_get(Scope::Global, TENANTS_SPACE, t.as_str())
            .await?
            .map(|v| base64::engine::general_purpose::STANDARD.encode(v));
        w.write(&line(&Record::Tenant {
            tenant: t.to_string(),
            registry,
        })?)?;
        totals.tenants += 1;
        for (space, key) in PORTABLE_RECORDS {
            if let Some(v) = store.meta_get(Scope::Tenant(t), space, key).await? {
                w.write(&line(&Record::Meta {
                    tenant: t.to_string(),
                    space: (*space).to_owned(),
                    key: (*key).to_owned(),
                    value: base64::engine::general_purpose::STANDARD.encode(v),
                })?)?;
                totals.meta += 1;
            }
        }
        for log in store.list_logs(t).await? {
            totals.logs += 1;
            let mut q = ReadQuery {
                limit: RECORD_ENTRIES,
                ..ReadQuery::default()
            };
            loop {
                let page = store.read(t, &log, &q).await?;
                let mut batch = Vec::new();
                let mut raw = 0;
                for e in page.entries {
                    raw += e.data.get().len();
                    batch.push(ArchivedEntry {
                        id: e.id,
                        ts: e.timestamp,
                        data: e.data,
                    });
                    if raw >= RECORD_BYTES {
                        totals.entries += batch.len() as u64;
                        bar.inc(batch.len() as u64);
                        w.write(&line(&Record::Entries {
                            tenant: t.to_string(),
                            log: log.to_string(),
                            entries: std::mem::take(&mut batch),
                        })?)?;
                        raw = 0;
                    }
                }
                if !batch.is_empty() {
                    totals.entries += batch.len() as u64;
                    bar.inc(batch.len() as u64);
                    w.write(&line(&Record::Entries {
                        tenant: t.to_string(),
                        log: log.to_string(),
                        entries: batch,
                    })?)?;
                }
                match page.next_cursor {
                    Some(c) => q.before = Some(c),
                    None => break,
                }
            }
        }
    }
    w.write(&line(&Record::End {
        tenants: totals.tenants,
        logs: totals.logs,
        entries: totals.entries,
        meta: totals.meta,
    })?)?;
    bar.finish_and_clear();
    let written = w.written;
    let out = w.finish()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all().context("cannot sync the archive")?;
    let bytes = written.max(file.metadata().map(|m| m.len()).unwrap_or(written));
    Ok((totals, bytes))
}

/// Removes archives of the same label beyond `keep` newest or older than `keep_days`, never
/// the one just written. Returns what it removed.
fn prune(
    dir: &Path,
    label: &str,
    just_written: &Path,
    keep: Option<usize>,
    keep_days: Option<u64>,
) -> anyhow::Result<Vec<PathBuf>> {
    let prefix = format!("{FILE_PREFIX}{label}-");
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stamp) = name
            .strip_prefix(&prefix)
            .and_then(|s| s.strip_suffix(FILE_SUFFIX))
        {
            found.push((stamp.to_owned(), e.path()));
        }
    }
    // Timestamps sort as text; newest first.
    found.sort_by(|a, b| b.0.cmp(&a.0));
    let cutoff = keep_days.map(|d| {
        chrono::Utc::now() - chrono::Duration::milliseconds((d as i64).saturating_mul(DAY_MS))
    });
    let mut removed = Vec::new();
    for (i, (stamp, path)) in found.into_iter().enumerate() {
        if path == just_written {
            continue;
        }
        let too_many = keep.is_some_and(|k| i >= k);
        let too_old = cutoff.is_some_and(|c| {
            chrono::NaiveDateTime::parse_from_str(&stamp, "%Y%m%dT%H%M%S%3fZ")
                .is_ok_and(|t| t.and_utc() < c)
        });
        if too_many || too_old {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Splits decrypted chunks into record lines.
struct Lines<R: std::io::Read> {
    reader: archive::Reader<R>,
    pending: Vec<u8>,
    finished: bool,
}

impl<R: std::io::Read> Lines<R> {
    fn next(&mut self) -> anyhow::Result<Option<Record>> {
        loop {
            if let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
                let rest = self.pending.split_off(pos + 1);
                let line = std::mem::replace(&mut self.pending, rest);
                let rec = serde_json::from_slice(&line[..pos])
                    .map_err(|e| anyhow::anyhow!("the archive holds a bad record: {e}"))?;
                return Ok(Some(rec));
            }
            if self.pending.len() > MAX_LINE {
                bail!("the archive holds a record larger than {MAX_LINE} bytes");
            }
            if self.finished {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                bail!("the archive ends in the middle of a record");
            }
            match self.reader.next_chunk()? {
                Some(c) => self.pending.extend(c),
                None => self.finished = true,
            }
        }
    }
}

/// A checked record, ready to apply.
enum Step {
    /// A tenant and its registry record.
    Tenant(TenantId, Option<Vec<u8>>),
    Meta(TenantId, String, String, Vec<u8>),
    Entries(TenantId, LogName, Vec<Entry>),
}

fn check(
    rec: Record,
    totals: &mut Totals,
    logs: &mut BTreeMap<(String, String), ()>,
) -> anyhow::Result<Option<Step>> {
    let tenant = |t: &str| {
        TenantId::new(t).map_err(|e| anyhow::anyhow!("the archive names a bad tenant '{t}': {e}"))
    };
    Ok(match rec {
        Record::Tenant {
            tenant: t,
            registry,
        } => {
            let id = tenant(&t)?;
            let registry = registry
                .map(|r| base64::engine::general_purpose::STANDARD.decode(r))
                .transpose()
                .context("the archive holds a bad tenant record")?;
            totals.tenants += 1;
            Some(Step::Tenant(id, registry))
        }
        Record::Meta {
            tenant: t,
            space,
            key,
            value,
        } => {
            if !PORTABLE_RECORDS.contains(&(space.as_str(), key.as_str())) {
                bail!("the archive holds a record ({space}/{key}) that backups never carry");
            }
            let v = base64::engine::general_purpose::STANDARD
                .decode(value)
                .context("the archive holds a bad settings record")?;
            totals.meta += 1;
            Some(Step::Meta(tenant(&t)?, space, key, v))
        }
        Record::Entries {
            tenant: t,
            log,
            entries,
        } => {
            let tid = tenant(&t)?;
            let name = LogName::new(log.as_str())
                .map_err(|e| anyhow::anyhow!("the archive names a bad log '{log}': {e}"))?;
            if entries.len() > neurallog_storage::MAX_IMPORT_ENTRIES {
                bail!("the archive holds an oversized record");
            }
            if logs.insert((t, log), ()).is_none() {
                totals.logs += 1;
            }
            totals.entries += entries.len() as u64;
            let entries = entries
                .into_iter()
                .map(|e| Entry {
                    id: e.id,
                    name: name.clone(),
                    timestamp: e.ts,
                    data: e.data,
                })
                .collect();
            Some(Step::Entries(tid, name, entries))
        }
        Record::End { .. } => bail!("the archive has records after its end"),
    })
}

/// Reads every record, authenticating every chunk and checking every record; calls `apply`
/// for each checked step (pass 1 passes a no-op). Fails unless the archive ends with an `end`
/// record whose totals match.
async fn walk(
    file: &mut File,
    key: &BackupKey,
    mut apply: impl AsyncFnMut(Step) -> anyhow::Result<()>,
) -> anyhow::Result<(archive::Header, Totals)> {
    file.seek(SeekFrom::Start(0))?;
    let reader = archive::Reader::open(BufReader::new(&mut *file), key)?;
    let header = reader.header.clone();
    let mut lines = Lines {
        reader,
        pending: Vec::new(),
        finished: false,
    };
    let mut totals = Totals::default();
    let mut logs = BTreeMap::new();
    let mut ended = None;
    while let Some(rec) = lines.next()? {
        if ended.is_some() {
            bail!("the archive has records after its end");
        }
        if let Record::End {
            tenants,
            logs,
            entries,
            meta,
        } = rec
        {
            ended = Some(Totals {
                tenants,
                logs,
                entries,
                meta,
            });
            continue;
        }
        if let Some(step) = check(rec, &mut totals, &mut logs)? {
            apply(step).await?;
        }
    }
    match ended {
        Some(t) if t == totals => Ok((header, totals)),
        Some(_) => bail!("the archive's totals do not match its records (altered)"),
        None => bail!("the archive is truncated (its end record is missing)"),
    }
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let key = BackupKey::from_env(&|n| std::env::var(n).ok())?;
    let mut file =
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    // Pass 1: nothing is written until the whole archive is proven intact.
    let (header, totals) = walk(&mut file, &key, async |_| Ok(())).await?;
    let config = args.store.resolve()?;
    let store = open_storage(&config).await?;
    let bar = progress(totals.entries, "restore");
    let mut imported = 0u64;
    let mut skipped = 0u64;
    walk(&mut file, &key, async |step| {
        match step {
            // A registry record is only added, never overwritten: the target's own record of
            // an existing tenant wins.
            Step::Tenant(t, Some(record)) => {
                if store
                    .meta_get(Scope::Global, TENANTS_SPACE, t.as_str())
                    .await?
                    .is_none()
                {
                    store
                        .meta_put(Scope::Global, TENANTS_SPACE, t.as_str(), record)
                        .await?;
                }
            }
            Step::Tenant(_, None) => {}
            Step::Meta(t, space, k, v) => store.meta_put(Scope::Tenant(&t), &space, &k, v).await?,
            Step::Entries(t, log, entries) => {
                let n = entries.len() as u64;
                let o = store.import(&t, &log, entries).await?;
                imported += o.imported;
                skipped += o.skipped;
                bar.inc(n);
            }
        }
        Ok(())
    })
    .await?;
    bar.finish_and_clear();
    store.flush().await?;
    println!(
        "restored: {} tenant(s) [{}], {} log(s), {} entries ({} already present, skipped), {} settings record(s), archive of {}",
        totals.tenants,
        header.tenants.join(", "),
        totals.logs,
        imported,
        skipped,
        totals.meta,
        neurallog_core::time::format_ms(header.created_ms)
    );
    Ok(())
}
