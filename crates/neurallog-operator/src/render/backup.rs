//! Scheduled backups (guide: "Encrypted Backups", "Backup Retention", "Backup Restoration").
//!
//! A CronJob runs `neurallog backup` against the tenant's Redis into a dedicated volume. The
//! archive is encrypted and integrity-checked by the server's own backup code (spec §6.4).
//! It reads the store with the master key and seals the archive with a backup key of its own,
//! which the operator never generates: it lives in the Secret `backup-key` (key `backup-key`)
//! that the tenant's owner creates in the namespace and also keeps outside the cluster, since
//! a backup is only worth its key when the cluster is gone. Everything arrives by
//! `secretKeyRef` exactly as for the server; until that Secret exists the job's pods do not
//! start, which the CronJob's status shows.
//! The job pod is hardened like every other tenant pod.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSpec, PodTemplateSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt as _;

use super::pod::{
    container_security_context, pod_security_context, resources, tmp_mount, tmp_volume,
};
use super::rbac::BACKUP_ACCOUNT;
use super::server::secret_env;
use super::{component, labels, meta, redis};
use crate::config::OperatorConfig;
use crate::crd::{BackupSpec, ComputeResources, StorageSpec, Tenant};
use crate::secrets::{MASTER_KEY, MASTER_KEY_KEY};

/// Name of the backup CronJob and of its volume claim.
pub const NAME: &str = "neurallog-backup";

fn spec_of(tenant: &Tenant) -> BackupSpec {
    tenant.spec.backup.clone().unwrap_or(BackupSpec {
        schedule: "0 3 * * *".into(),
        keep: 7,
        storage: StorageSpec::default(),
    })
}

/// The volume the archives are written to.
pub fn volume_claim(tenant: &Tenant) -> PersistentVolumeClaim {
    let b = spec_of(tenant);
    PersistentVolumeClaim {
        metadata: meta(tenant, NAME, component::BACKUP),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: b.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(b.storage.size.clone()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Name of the Secret (and its data key) holding the archive key, created by the tenant's owner.
pub const BACKUP_KEY_SECRET: &str = "backup-key";

/// The CronJob running `neurallog backup` on `spec.backup.schedule`.
pub fn cron_job(tenant: &Tenant, config: &OperatorConfig) -> CronJob {
    let b = spec_of(tenant);
    let uid = config.run_as_user;
    let image = tenant
        .spec
        .server
        .image
        .clone()
        .unwrap_or_else(|| config.server_image.clone());
    let container = Container {
        name: "backup".into(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec![
            "backup".into(),
            "--tenant".into(),
            tenant.name_any(),
            "--out".into(),
            "/backups".into(),
            "--keep".into(),
            b.keep.to_string(),
        ]),
        env: Some(
            vec![
                k8s_openapi::api::core::v1::EnvVar {
                    name: "REDIS_URL".into(),
                    value: Some(redis::url(tenant, config)),
                    value_from: None,
                },
                redis::password_env("REDIS_PASSWORD"),
                secret_env("NEURALLOG_MASTER_KEY", MASTER_KEY, MASTER_KEY_KEY),
                secret_env("NEURALLOG_BACKUP_KEY", BACKUP_KEY_SECRET, BACKUP_KEY_SECRET),
            ]
            .into_iter()
            .chain(redis::ca_env(tenant))
            .chain([k8s_openapi::api::core::v1::EnvVar {
                name: "NODE_ENV".into(),
                value: Some("production".into()),
                value_from: None,
            }])
            .collect(),
        ),
        resources: Some(resources(&ComputeResources::guide_default())),
        security_context: Some(container_security_context(uid)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "backups".into(),
                mount_path: "/backups".into(),
                ..VolumeMount::default()
            },
            tmp_mount(),
        ]),
        ..Container::default()
    };
    CronJob {
        metadata: meta(tenant, NAME, component::BACKUP),
        spec: Some(CronJobSpec {
            schedule: b.schedule.clone(),
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(tenant, component::BACKUP)),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    active_deadline_seconds: Some(3600),
                    ttl_seconds_after_finished: Some(86_400),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels(tenant, component::BACKUP)),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            restart_policy: Some("OnFailure".into()),
                            service_account_name: Some(BACKUP_ACCOUNT.into()),
                            automount_service_account_token: Some(false),
                            enable_service_links: Some(false),
                            security_context: Some(pod_security_context(uid)),
                            containers: vec![container],
                            volumes: Some(vec![
                                Volume {
                                    name: "backups".into(),
                                    persistent_volume_claim: Some(
                                        PersistentVolumeClaimVolumeSource {
                                            claim_name: NAME.into(),
                                            read_only: Some(false),
                                        },
                                    ),
                                    ..Volume::default()
                                },
                                tmp_volume(),
                            ]),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }
}
