//! `cat`: print one repository object, decrypted, for debugging.

use crate::error::{Error, Result};
use crate::repo::envelope::FileType;
use crate::repo::keyfile::KeyFile;
use crate::repo::lock::LockInfo;
use crate::repo::{FileKind, Repository};

/// What `cat` can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatKind {
    /// The config (JSON).
    Config,
    /// A key file with its decrypted metadata (JSON).
    Key,
    /// A lock (JSON).
    Lock,
    /// A snapshot (JSON).
    Snapshot,
    /// An index file (JSON).
    Index,
    /// A pack's header (JSON).
    Pack,
    /// A blob's plaintext (raw bytes; trees are JSON).
    Blob,
}

fn json(v: &impl serde::Serialize) -> Result<Vec<u8>> {
    let mut b = serde_json::to_vec_pretty(v).map_err(Error::encode)?;
    b.push(b'\n');
    Ok(b)
}

/// Returns the bytes to print for an object (`id` may be a unique prefix,
/// or `latest` for snapshots; it is ignored for the config).
///
/// # Errors
/// [`Error::NotFound`], [`Error::Corrupt`], storage errors.
pub async fn cat(repo: &Repository, kind: CatKind, id: Option<&str>) -> Result<Vec<u8>> {
    let need = || id.ok_or_else(|| Error::bad_value("object id", "", "an id for this object type"));
    match kind {
        CatKind::Config => json(repo.config()),
        CatKind::Key => {
            let id = repo.find_id(crate::repo::FileKind::Key, need()?).await?;
            let bytes = repo.read_raw(FileKind::Key, &id).await?;
            let kf = KeyFile::decode(&bytes, &id.to_hex())?;
            let meta = kf.meta(repo.keys(), &id.to_hex())?;
            json(&serde_json::json!({ "file": kf, "meta": meta }))
        }
        CatKind::Lock => {
            let id = repo.find_id(crate::repo::FileKind::Lock, need()?).await?;
            let p = repo.load_file(FileType::Lock, &id).await?;
            let l: LockInfo =
                serde_json::from_slice(&p).map_err(|e| Error::corrupt(format!("lock {id}"), e))?;
            json(&l)
        }
        CatKind::Snapshot => {
            let id = repo.find_id(crate::repo::FileKind::Snapshot, need()?).await?;
            json(&repo.load_snapshot(&id).await?)
        }
        CatKind::Index => {
            let id = repo.find_id(crate::repo::FileKind::Index, need()?).await?;
            json(&repo.load_index_file(&id).await?)
        }
        CatKind::Pack => {
            let prefix = need()?;
            let id = match prefix.parse() {
                Ok(id) => id,
                Err(_) => {
                    repo.load_index().await?;
                    let p = prefix.to_ascii_lowercase();
                    let idx = repo.index();
                    let m: Vec<_> = idx
                        .packs()
                        .keys()
                        .filter(|k| k.to_hex().starts_with(&p))
                        .copied()
                        .collect();
                    match m.as_slice() {
                        [one] => *one,
                        _ => return Err(Error::NotFound(format!("a unique indexed pack {prefix}"))),
                    }
                }
            };
            let entries = repo.read_pack_header(&id).await?;
            json(
                &entries
                    .iter()
                    .map(|(e, off)| serde_json::json!({"offset": off, "blob": e}))
                    .collect::<Vec<_>>(),
            )
        }
        CatKind::Blob => {
            let prefix = need()?;
            repo.load_index().await?;
            let idx = repo.index();
            let id = match prefix.parse() {
                Ok(id) => id,
                Err(_) => {
                    let p = prefix.to_ascii_lowercase();
                    let m: Vec<_> = idx
                        .blobs()
                        .filter(|l| l.entry.id.to_hex().starts_with(&p))
                        .map(|l| l.entry.id)
                        .collect();
                    match m.as_slice() {
                        [one] => *one,
                        [] => return Err(Error::NotFound(format!("blob {prefix}"))),
                        _ => {
                            return Err(Error::bad_value(
                                "blob prefix",
                                prefix,
                                format!("a prefix of one blob ({} match)", m.len()),
                            ));
                        }
                    }
                }
            };
            repo.read_blob(&id).await
        }
    }
}
