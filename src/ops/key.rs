//! `key list|add|remove|passwd`: manage the passwords that open a repository.

use serde::Serialize;

use crate::error::{Error, Refusal, Result};
use crate::id::Id;
use crate::repo::keyfile::{KdfParams, KeyFile};
use crate::repo::{FileKind, Repository};

/// One key as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub id: Id,
    /// Whether it is the key that opened the repository.
    pub current: bool,
    /// Creation time (RFC 3339), or "?" when unreadable.
    pub created: String,
    /// Host that created it.
    pub hostname: String,
    /// User that created it.
    pub username: String,
    /// Argon2id parameters.
    pub kdf: KdfParams,
}

/// Lists every key.
///
/// # Errors
/// Storage errors; a damaged key file is reported as [`Error::Corrupt`].
pub async fn list(repo: &Repository) -> Result<Vec<KeyInfo>> {
    let mut out = Vec::new();
    for id in repo.list_ids(crate::repo::FileKind::Key).await? {
        let bytes = repo.read_raw(FileKind::Key, &id).await?;
        if Id::hash(&bytes) != id {
            return Err(Error::corrupt(
                format!("key {id}"),
                "content does not match its name",
            ));
        }
        let kf = KeyFile::decode(&bytes, &id.to_hex())?;
        let meta = kf.meta(repo.keys(), &id.to_hex())?;
        out.push(KeyInfo {
            id,
            current: id == repo.key_id(),
            created: meta.created,
            hostname: meta.hostname,
            username: meta.username,
            kdf: kf.kdf.params,
        });
    }
    out.sort_by(|a, b| a.created.cmp(&b.created));
    Ok(out)
}

/// Adds a key for `password`.
///
/// # Errors
/// Storage errors.
pub async fn add(repo: &Repository, password: &[u8], kdf: KdfParams) -> Result<Id> {
    repo.add_key(password, kdf).await
}

/// Removes a key. Refuses the key in use and the last key.
///
/// # Errors
/// [`Error::Refused`] (the key in use, the last key); [`Error::NotFound`].
pub async fn remove(repo: &Repository, prefix: &str) -> Result<Id> {
    let id = repo.find_id(crate::repo::FileKind::Key, prefix).await?;
    let all = repo.list_ids(crate::repo::FileKind::Key).await?;
    if !all.contains(&id) {
        return Err(Error::NotFound(format!("key {id}")));
    }
    if id == repo.key_id() {
        return Err(Error::Refused(Refusal::KeyInUse { key: id.short() }));
    }
    if all.len() <= 1 {
        return Err(Error::Refused(Refusal::LastKey));
    }
    repo.remove_file(FileKind::Key, &id).await?;
    Ok(id)
}

/// Changes the password of the current key: adds a key for the new
/// password, then removes the old one (in that order, so a crash leaves
/// two keys, never none).
///
/// # Errors
/// Storage errors.
pub async fn passwd(repo: &Repository, new_password: &[u8], kdf: KdfParams) -> Result<(Id, Id)> {
    let new = repo.add_key(new_password, kdf).await?;
    let old = repo.key_id();
    repo.remove_file(FileKind::Key, &old).await?;
    Ok((old, new))
}
