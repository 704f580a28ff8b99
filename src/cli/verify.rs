//! `verify`, `verify-report` and `drill`: a cluster compared with a
//! snapshot, the signed evidence of it, and a restore proved and undone.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::Ctx;
use super::kafka::RestoreSelection;
use kvault::error::exit;
use kvault::ops::restore::drill::{DrillOptions, DrillReport};
use kvault::ops::restore::verify::{VerifyOptions, VerifyReport, signature_valid, signed_report};

/// What a restore wrote, as `verify` and `drill` select it, and where
/// the evidence goes.
#[derive(Debug, Args)]
pub struct Selection {
    #[command(flatten)]
    restore: RestoreSelection,
    /// Write the evidence report (JSON) to FILE and its signature to FILE.sig.
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
}

/// `kvault verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    sel: Selection,
    /// Target topic FROM was restored as TO (repeatable).
    #[arg(long = "rename", value_name = "FROM=TO")]
    rename: Vec<String>,
    /// The prefix the restore put before every topic name.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Records after the restored ones on the target are not a difference.
    #[arg(long)]
    allow_newer: bool,
    /// Leave the cluster state (ACLs, SCRAM users, quotas, broker configs)
    /// uncompared, as for a restore with `--no-metadata`.
    #[arg(long)]
    no_metadata: bool,
    /// The principal map of the restore's ACLs and quota users:
    /// `User:alice=User:dr-alice` (repeatable).
    #[arg(long = "acl-principal-map", value_name = "FROM=TO")]
    acl_principal_map: Vec<String>,
}

/// `kvault drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    sel: Selection,
    /// Scratch prefix of the restored topics (e.g. `drill-`).
    #[arg(long)]
    prefix: String,
    /// Leave what the drill restored (to look at a difference).
    #[arg(long)]
    keep: bool,
}

/// `kvault verify-report`.
#[derive(Debug, Args)]
pub struct VerifyReportArgs {
    /// The report `verify --report` or `drill --report` wrote.
    file: std::path::PathBuf,
    /// Its signature (default FILE.sig).
    #[arg(long, value_name = "FILE")]
    signature: Option<std::path::PathBuf>,
}

/// The report for humans: each differing partition and group, and the verdict.
fn report_text(r: &VerifyReport) -> String {
    let mut s = String::new();
    for p in r.partitions.iter().filter(|p| !p.equal) {
        match &p.difference {
            Some(d) => s.push_str(&format!(
                "DIFFERS {} (from {}): first at offset {}: {}{}\n",
                p.target,
                p.source,
                d.offset,
                serde_json::to_value(d.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                if d.fields.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", d.fields.join(", "))
                }
            )),
            None => s.push_str(&format!(
                "DIFFERS {}: {} records expected, {} found\n",
                p.target, p.expected, p.found
            )),
        }
    }
    for g in r.groups.iter().filter(|g| !g.equal) {
        s.push_str(&format!(
            "DIFFERS group {} on {}: expected offset {:?}, found {:?}\n",
            g.group, g.partition, g.expected, g.found
        ));
    }
    for t in r.topics.iter().filter(|t| !t.equal) {
        s.push_str(&format!(
            "DIFFERS topic {}: {} partition(s) in the snapshot, {}{}\n",
            t.topic,
            t.partitions.0,
            t.partitions
                .1
                .map_or("absent on the target".to_string(), |n| format!(
                    "{n} on the target"
                )),
            if t.configs_differing.is_empty() {
                String::new()
            } else {
                format!("; {}", t.configs_differing.join("; "))
            }
        ));
    }
    if let Some(c) = r.cluster_state.as_ref().filter(|c| !c.equal) {
        for (what, items) in [
            ("ACL missing", &c.acls_missing),
            ("SCRAM user missing", &c.users_missing),
            ("quota", &c.quotas_differing),
            ("broker config", &c.configs_differing),
        ] {
            for i in items {
                s.push_str(&format!("DIFFERS {what}: {i}\n"));
            }
        }
    }
    let differing = r.partitions.iter().filter(|p| !p.equal).count();
    s.push_str(&format!(
        "{}: {} partition(s), {} record(s), {} group offset(s) compared in {:.1} s{}",
        if r.equal {
            "equal"
        } else {
            "the cluster differs from the snapshot"
        },
        r.partitions.len(),
        r.records,
        r.groups.len(),
        r.verify_ms as f64 / 1000.0,
        if differing > 0 {
            format!("; {differing} partition(s) differ")
        } else {
            String::new()
        }
    ));
    s
}

/// Writes the report and its signature, when asked.
fn write_report(repo: &kvault::Repository, path: Option<&std::path::Path>, r: &VerifyReport) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let (bytes, sig) = signed_report(repo, r)?;
    std::fs::write(path, bytes).map_err(|e| anyhow::anyhow!("--report {}: {e}", path.display()))?;
    let sig_path = sig_path(path);
    std::fs::write(&sig_path, format!("{sig}\n"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", sig_path.display()))?;
    Ok(())
}

fn sig_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".sig");
    p.into()
}

/// The verification's figures for the metrics sinks.
fn verify_metrics(r: &VerifyReport) {
    use super::metrics::set;
    set(
        "kvault_verify_equal",
        "1 when the last verify found the cluster equal to the snapshot.",
        f64::from(u8::from(r.equal)),
    );
    set(
        "kvault_verify_partitions",
        "Partitions the last verify compared.",
        r.partitions.len() as f64,
    );
    set(
        "kvault_verify_seconds",
        "How long the last verify took.",
        r.verify_ms as f64 / 1000.0,
    );
    if let Some(rto) = r.rto_ms {
        set(
            "kvault_drill_rto_seconds",
            "The last drill's restore and verify time.",
            rto as f64 / 1000.0,
        );
    }
}

pub async fn run_verify(ctx: &Ctx, a: VerifyArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let id = repo
        .find_id(kvault::FileKind::Snapshot, &a.sel.restore.snapshot)
        .await?;
    let mut restore = a.sel.restore.options(&a.rename, &a.prefix)?;
    restore.acl_principal_map = super::kafka::from_to_pairs("--acl-principal-map", &a.acl_principal_map)?;
    if a.no_metadata {
        restore.metadata = kvault::ops::restore::Metadata::Without;
    }
    let opts = VerifyOptions {
        restore,
        allow_newer: a.allow_newer,
    };
    let bar = ctx.out.progress();
    let r = kvault::ops::restore::verify::verify(&repo, &id, &opts, &bar).await?;
    for w in &r.warnings {
        ctx.out.note(&format!("warning: {w}"));
    }
    write_report(&repo, a.sel.report.as_deref(), &r)?;
    verify_metrics(&r);
    ctx.out.emit("verify", json!(r), || report_text(&r));
    Ok(if r.equal { exit::OK } else { exit::DIFFERS })
}

pub async fn run_drill(ctx: &Ctx, a: DrillArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let id = repo
        .find_id(kvault::FileKind::Snapshot, &a.sel.restore.snapshot)
        .await?;
    let opts = DrillOptions {
        restore: a.sel.restore.options(&[], &a.prefix)?,
        keep: a.keep,
    };
    let bar = ctx.out.progress();
    let d: DrillReport = kvault::ops::restore::drill::drill(&repo, &id, &opts, &bar).await?;
    write_report(&repo, a.sel.report.as_deref(), &d.verify)?;
    verify_metrics(&d.verify);
    ctx.out.emit("drill", json!(d), || {
        let mut s = report_text(&d.verify);
        s.push_str(&format!(
            "\nrestore {:.1} s, RTO {:.1} s, RPO {:.1} s; {} topic(s) and {} group(s) created{}",
            d.verify.restore_ms.unwrap_or(0) as f64 / 1000.0,
            d.verify.rto_ms.unwrap_or(0) as f64 / 1000.0,
            d.verify.rpo_ms as f64 / 1000.0,
            d.created_topics.len(),
            d.created_groups.len(),
            if d.cleaned_up {
                ", deleted again"
            } else {
                ", kept (--keep)"
            }
        ));
        if !d.groups_left_out.is_empty() {
            s.push_str(&format!(
                "\ngroups the cluster already has, not committed nor verified: {}",
                d.groups_left_out.join(", ")
            ));
        }
        s
    });
    Ok(if d.verify.equal { exit::OK } else { exit::DIFFERS })
}

pub async fn run_verify_report(ctx: &Ctx, a: VerifyReportArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let bytes = std::fs::read(&a.file).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    let sig_file = a.signature.unwrap_or_else(|| sig_path(&a.file));
    let sig =
        std::fs::read_to_string(&sig_file).map_err(|e| anyhow::anyhow!("{}: {e}", sig_file.display()))?;
    let valid = signature_valid(&repo, &bytes, &sig);
    ctx.out.emit("verify_report", json!({"file": a.file, "signature_valid": valid}), || {
        if valid {
            format!("{}: signed by this repository's key, unedited", a.file.display())
        } else {
            format!("{}: the signature does not match: the report was edited, or signed by another repository", a.file.display())
        }
    });
    Ok(if valid { exit::OK } else { exit::DIFFERS })
}
