//! `kvault key list|add|remove|passwd`.

use anyhow::Result;
use clap::Subcommand;
use kvault::error::exit;
use kvault::ops::key;
use serde_json::json;

use super::{Ctx, KdfArgs, password};

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// List keys.
    List,
    /// Add a key for another password.
    Add {
        /// Read the new password from this file.
        #[arg(long)]
        new_password_file: Option<String>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a key (not the one in use, not the last one).
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
    /// Change the password of the key in use.
    Passwd {
        /// Read the new password from this file.
        #[arg(long)]
        new_password_file: Option<String>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
}

pub async fn run(ctx: &Ctx, cmd: KeyCmd) -> Result<i32> {
    let repo = ctx.open().await?;
    match cmd {
        KeyCmd::List => {
            let keys = key::list(&repo).await?;
            if !ctx.out.json && !ctx.out.quiet {
                println!(" {:<10} {:<22} {:<30} KDF", "ID", "CREATED", "USER@HOST");
            }
            for k in keys {
                ctx.out.emit("key", json!(k), || {
                    format!(
                        "{}{:<10} {:<22} {:<30} argon2id m={}MiB t={} p={}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        k.created.get(..19).unwrap_or(&k.created),
                        format!("{}@{}", k.username, k.hostname),
                        k.kdf.m_cost_kib / 1024,
                        k.kdf.t_cost,
                        k.kdf.p_cost
                    )
                });
            }
        }
        KeyCmd::Add {
            new_password_file,
            kdf,
        } => {
            let pw = password::new_password(new_password_file.as_deref())?;
            let id = key::add(&repo, &pw, kdf.params()).await?;
            ctx.out.emit("key_added", json!({"id": id}), || {
                format!("added key {}", id.short())
            });
        }
        KeyCmd::Remove { id } => {
            let id = key::remove(&repo, &id).await?;
            ctx.out.emit("key_removed", json!({"id": id}), || {
                format!("removed key {}", id.short())
            });
        }
        KeyCmd::Passwd {
            new_password_file,
            kdf,
        } => {
            let pw = password::new_password(new_password_file.as_deref())?;
            let (old, new) = key::passwd(&repo, &pw, kdf.params()).await?;
            ctx.out
                .emit("key_changed", json!({"removed": old, "added": new}), || {
                    format!(
                        "password changed: key {} replaced by {}",
                        old.short(),
                        new.short()
                    )
                });
        }
    }
    Ok(exit::OK)
}
