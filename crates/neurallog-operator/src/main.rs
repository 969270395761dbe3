//! `neurallog-operator`: a thin binary over the library.
//!
//! - `run`: the operator (leader election, controller, `/metrics`, `/healthz`, `/readyz`)
//! - `crd`: prints the Tenant CRD (what `deploy/crd.yaml` holds)
//! - `render -f tenant.yaml`: prints every object the operator would apply, offline

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kube::ResourceExt as _;
use neurallog_operator::config::{self, OperatorConfig};
use neurallog_operator::crd::{self, Tenant};
use neurallog_operator::render::{self, RenderInputs};
use neurallog_operator::run::{self, RunSettings};
use neurallog_operator::secrets::SecretKind;

#[derive(Parser)]
#[command(
    name = "neurallog-operator",
    version,
    about = "Kubernetes operator for NeuralLog tenants"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Settings {
    /// Default server image.
    #[arg(long, env = "NEURALLOG_SERVER_IMAGE", default_value = config::DEFAULT_SERVER_IMAGE)]
    server_image: String,
    /// Default Redis image.
    #[arg(long, env = "NEURALLOG_REDIS_IMAGE", default_value = config::DEFAULT_REDIS_IMAGE)]
    redis_image: String,
    /// Namespace of the Prometheus allowed to scrape tenant servers.
    #[arg(
        long,
        env = "NEURALLOG_MONITORING_NAMESPACE",
        default_value = "monitoring"
    )]
    monitoring_namespace: String,
    /// Cluster DNS domain.
    #[arg(
        long,
        env = "NEURALLOG_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,
}

impl Settings {
    fn operator(&self) -> OperatorConfig {
        OperatorConfig {
            server_image: self.server_image.clone(),
            redis_image: self.redis_image.clone(),
            monitoring_namespace: self.monitoring_namespace.clone(),
            cluster_domain: self.cluster_domain.clone(),
            ..OperatorConfig::default()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster of the in-cluster or kubeconfig credentials.
    Run {
        #[command(flatten)]
        settings: Settings,
        /// Address of /metrics, /healthz and /readyz.
        #[arg(
            long,
            env = "NEURALLOG_OPERATOR_HTTP_ADDR",
            default_value = "0.0.0.0:8080"
        )]
        http_addr: std::net::SocketAddr,
        /// Namespace of the leader-election Lease.
        #[arg(long, env = "POD_NAMESPACE", default_value = "neurallog-system")]
        lease_namespace: String,
        /// This replica's identity in the election.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
    },
    /// Print the Tenant CustomResourceDefinition as YAML.
    Crd,
    /// Print every object the operator would apply for a Tenant, as multi-document YAML.
    Render {
        /// The Tenant manifest.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        settings: Settings,
        /// Also print the three Secrets with freshly generated values (as the operator would
        /// create them). Off by default so that render output never carries a secret.
        #[arg(long)]
        with_secrets: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .json()
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run {
            settings,
            http_addr,
            lease_namespace,
            identity,
        } => {
            let identity =
                identity.unwrap_or_else(|| format!("neurallog-operator-{}", std::process::id()));
            run::run(RunSettings {
                operator: settings.operator(),
                http_addr,
                lease_namespace,
                identity,
            })
            .await
        }
        Command::Crd => {
            print!("{}", crd::crd_yaml()?);
            Ok(())
        }
        Command::Render {
            file,
            settings,
            with_secrets,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let tenant: Tenant = serde_yaml::from_str(&text)
                .with_context(|| format!("{} is not a Tenant", file.display()))?;
            anyhow::ensure!(
                !tenant.name_any().is_empty(),
                "the Tenant has no metadata.name"
            );
            let mut objects =
                render::render(&tenant, &settings.operator(), &RenderInputs::default())?;
            if with_secrets {
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                for kind in SecretKind::ALL {
                    objects.insert(
                        1,
                        render::secret::secret(&tenant, kind, &kind.generate(), &now),
                    );
                }
            }
            print!("{}", render::to_yaml(&objects)?);
            Ok(())
        }
    }
}
