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
//! Memory: the trees on the path from a root to the current tree, and the
//! ids of every tree entered.

use std::collections::HashSet;

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
    /// A tree to read.
    Pending(Id),
    /// A tree read, returned once its subtrees are done.
    Loaded(Id, Tree),
}

/// Walks the trees below the roots pushed into it, each distinct tree at
/// most once over the walker's lifetime.
pub struct TreeWalker<'r> {
    repo: &'r Repository,
    entered: HashSet<Id>,
    stack: Vec<Frame>,
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
        }
    }

    /// Adds a root (a snapshot's tree) to walk next.
    pub fn push(&mut self, root: Id) {
        self.stack.push(Frame::Pending(root));
    }

    /// Whether tree `id` was entered (read or attempted) by this walker.
    pub fn entered(&self, id: &Id) -> bool {
        self.entered.contains(id)
    }

    /// The next tree in post-order, or `None` when every root pushed so far
    /// is done. `enter` is asked once per distinct tree before it is read;
    /// `false` skips it and everything below it.
    pub async fn next(&mut self, enter: &mut (dyn FnMut(&Id) -> bool + Send)) -> Option<Visit> {
        while let Some(frame) = self.stack.pop() {
            match frame {
                Frame::Loaded(id, tree) => return Some(Visit::Tree(id, tree)),
                Frame::Pending(id) => {
                    if !self.entered.insert(id) || !enter(&id) {
                        continue;
                    }
                    match self.repo.load_tree(&id).await {
                        Err(e) => return Some(Visit::Failed(id, e)),
                        Ok(tree) => {
                            let subs: Vec<Id> = tree.nodes.iter().filter_map(|n| n.subtree).collect();
                            self.stack.push(Frame::Loaded(id, tree));
                            // Reversed, so subtrees are visited in node order.
                            self.stack.extend(subs.into_iter().rev().map(Frame::Pending));
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
        while let Some(v) = w.next(&mut |_| true).await {
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
        assert!(w.next(&mut |_| true).await.is_none());
        let mut w = TreeWalker::new(&r);
        w.push(root);
        let mut seen = 0;
        while let Some(v) = w.next(&mut |id| *id != b).await {
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
        while let Some(v) = w.next(&mut |_| true).await {
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
