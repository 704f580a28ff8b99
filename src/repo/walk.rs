//! The one walker of snapshot trees, used by check, prune, stats and copy.
//!
//! Trees are content-addressed, so the trees of all snapshots form a DAG in
//! which a tree shared by many snapshots (an unchanged partition) is read
//! once. The walker is pulled: [`TreeWalker::next`] returns the next tree
//! in post-order (every subtree before the trees that name it), so callers
//! that rewrite trees bottom-up (copy) and callers that sum sizes (stats)
//! need no recursion, and callers that only collect ids (prune, check) get
//! the same visits. Before a tree is read, the caller's `enter` decides
//! whether to read it at all (a tree already in the destination of a copy,
//! or one the index lacks). A tree that cannot be read is returned as an
//! error and the walk goes on with the rest.
//!
//! With [`TreeWalker::read_ahead`], the next trees on the walker's stack are
//! read on other tasks while the caller works (check, prune, stats: every
//! tree is read anyway; copy does not, as it skips trees it need not read).
//!
//! Memory: the trees on the path from a root to the current tree, the
//! trees read ahead, and the ids of every tree entered.

use std::collections::{HashMap, HashSet};

use tokio::task::JoinHandle;

use crate::error::Error;
use crate::id::Id;
use crate::repo::Repository;
use crate::repo::tree::Tree;

/// One step of a walk.
#[derive(Debug)]
pub enum Visit {
    /// A tree, after every subtree it names was visited (or skipped).
    Tree(Id, Tree),
    /// A tree that could not be read; its subtrees are not visited.
    Failed(Id, Error),
}

enum Frame {
    /// A tree to read, with the tag of the root it was reached from.
    Pending(Id, usize),
    /// A tree read, returned once its subtrees are done.
    Loaded(Id, Tree, usize),
}

/// Walks the trees below the roots pushed into it, each distinct tree at
/// most once over the walker's lifetime.
pub struct TreeWalker<'r> {
    repo: &'r Repository,
    entered: HashSet<Id>,
    stack: Vec<Frame>,
    tag: usize,
    ahead: usize,
    inflight: HashMap<Id, JoinHandle<crate::error::Result<Tree>>>,
}

impl Drop for TreeWalker<'_> {
    fn drop(&mut self) {
        for (_, h) in self.inflight.drain() {
            h.abort();
        }
    }
}

impl std::fmt::Debug for TreeWalker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TreeWalker({} entered, {} on the stack)",
            self.entered.len(),
            self.stack.len()
        )
    }
}

impl<'r> TreeWalker<'r> {
    /// A walker over `repo`'s trees.
    pub fn new(repo: &'r Repository) -> Self {
        TreeWalker {
            repo,
            entered: HashSet::new(),
            stack: Vec::new(),
            tag: 0,
            ahead: 0,
            inflight: HashMap::new(),
        }
    }

    /// Reads up to `n` of the next trees ahead on other tasks (trees the
    /// caller's `enter` then declines are read for nothing).
    pub fn read_ahead(mut self, n: usize) -> Self {
        self.ahead = n;
        self
    }

    /// Starts reading the next pending trees, up to the read-ahead.
    fn prefetch(&mut self) {
        if self.ahead == 0 {
            return;
        }
        let mut next = Vec::new();
        for f in self.stack.iter().rev() {
            if self.inflight.len() + next.len() >= self.ahead {
                break;
            }
            if let Frame::Pending(id, _) = f {
                if !self.entered.contains(id) && !self.inflight.contains_key(id) && !next.contains(id) {
                    next.push(*id);
                }
            }
        }
        for id in next {
            let repo = self.repo.clone();
            self.inflight
                .insert(id, tokio::spawn(async move { repo.load_tree(&id).await }));
        }
    }

    /// Adds a root (a snapshot's tree) to walk next.
    pub fn push(&mut self, root: Id) {
        self.push_tagged(root, 0);
    }

    /// Adds a root with a tag (e.g. the snapshot's position in a list):
    /// every tree first reached from it carries the tag, so roots can be
    /// walked together (reading ahead across them) and a tree still be
    /// attributed to its snapshot. Roots pushed together are walked last
    /// pushed first.
    pub fn push_tagged(&mut self, root: Id, tag: usize) {
        self.stack.push(Frame::Pending(root, tag));
    }

    /// The tag of the tree last entered or returned.
    pub fn tag(&self) -> usize {
        self.tag
    }

    /// Whether tree `id` was entered (read or attempted) by this walker.
    pub fn entered(&self, id: &Id) -> bool {
        self.entered.contains(id)
    }

    /// The next tree in post-order, or `None` when every root pushed so far
    /// is done. `enter` is asked once per distinct tree before it is read
    /// (with the tag of its root); `false` skips it and everything below
    /// it.
    pub async fn next(&mut self, enter: &mut (dyn FnMut(&Id, usize) -> bool + Send)) -> Option<Visit> {
        while let Some(frame) = self.stack.pop() {
            match frame {
                Frame::Loaded(id, tree, tag) => {
                    self.tag = tag;
                    return Some(Visit::Tree(id, tree));
                }
                Frame::Pending(id, tag) => {
                    self.tag = tag;
                    if !self.entered.insert(id) || !enter(&id, tag) {
                        continue;
                    }
                    let loaded = match self.inflight.remove(&id) {
                        Some(h) => h
                            .await
                            .unwrap_or_else(|e| Err(Error::worker("a tree read", format!("tree {id}: {e}")))),
                        None => self.repo.load_tree(&id).await,
                    };
                    match loaded {
                        Err(e) => return Some(Visit::Failed(id, e)),
                        Ok(tree) => {
                            let subs: Vec<Id> = tree.nodes.iter().filter_map(|n| n.subtree).collect();
                            self.stack.push(Frame::Loaded(id, tree, tag));
                            // Reversed, so subtrees are visited in node order.
                            self.stack
                                .extend(subs.into_iter().rev().map(|s| Frame::Pending(s, tag)));
                            self.prefetch();
                        }
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::repo::InitOptions;
    use crate::repo::keyfile::KdfParams;
    use crate::repo::pack::BlobType;
    use crate::repo::tree::Node;
    use crate::repo::writer::SaveSession;

    async fn repo() -> Repository {
        let opts = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        Repository::init(Arc::new(MemoryBackend::new()), b"pw", &opts)
            .await
            .unwrap()
    }

    fn node(name: &str, sub: Option<Id>) -> Node {
        Node {
            name: name.into(),
            kind: "t".into(),
            size: 0,
            subtree: sub,
            content: Vec::new(),
            meta: Default::default(),
        }
    }

    async fn save(s: &mut SaveSession, nodes: Vec<Node>) -> Id {
        s.save_blob(BlobType::Tree, Tree { nodes }.encode().unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn shared_subtrees_come_once_and_before_every_parent() {
        let r = repo().await;
        let mut s = SaveSession::new(&r);
        let leaf = save(&mut s, vec![node("leaf", None)]).await;
        let a = save(&mut s, vec![node("x", Some(leaf))]).await;
        let b = save(&mut s, vec![node("y", Some(leaf)), node("z", Some(a))]).await;
        let root = save(&mut s, vec![node("a", Some(a)), node("b", Some(b))]).await;
        s.commit().await.unwrap();
        r.load_index().await.unwrap();

        let mut w = TreeWalker::new(&r);
        w.push(root);
        let mut order = Vec::new();
        while let Some(v) = w.next(&mut |_, _| true).await {
            match v {
                Visit::Tree(id, _) => order.push(id),
                Visit::Failed(id, e) => panic!("{id}: {e}"),
            }
        }
        assert_eq!(order.len(), 4, "each tree once");
        let pos = |x: &Id| order.iter().position(|o| o == x).unwrap();
        assert!(pos(&leaf) < pos(&a) && pos(&a) < pos(&b) && pos(&b) < pos(&root));

        // A second root sharing everything visits nothing new; a skipped
        // tree hides its subtrees.
        w.push(root);
        assert!(w.next(&mut |_, _| true).await.is_none());
        let mut w = TreeWalker::new(&r);
        w.push(root);
        let mut seen = 0;
        while let Some(v) = w.next(&mut |id, _| *id != b).await {
            assert!(matches!(v, Visit::Tree(..)));
            seen += 1;
        }
        assert_eq!(seen, 3, "root, a, leaf");
    }

    #[tokio::test]
    async fn an_unreadable_tree_is_reported_and_the_walk_goes_on() {
        let r = repo().await;
        let mut s = SaveSession::new(&r);
        let missing = Id::hash(b"no such tree");
        let ok = save(&mut s, vec![node("ok", None)]).await;
        let root = save(&mut s, vec![node("m", Some(missing)), node("o", Some(ok))]).await;
        s.commit().await.unwrap();
        r.load_index().await.unwrap();
        let mut w = TreeWalker::new(&r);
        w.push(root);
        let (mut trees, mut failed) = (0, 0);
        while let Some(v) = w.next(&mut |_, _| true).await {
            match v {
                Visit::Tree(..) => trees += 1,
                Visit::Failed(id, _) => {
                    assert_eq!(id, missing);
                    failed += 1;
                }
            }
        }
        assert_eq!((trees, failed), (2, 1));
    }
}
