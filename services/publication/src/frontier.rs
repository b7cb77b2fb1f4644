//! The log's Merkle tree kept as it grows, so that appending, signing a checkpoint and answering
//! a proof each cost O(log n) hashes and stored nodes instead of reading every leaf. The hashing
//! is `merkle.rs`'s (RFC 9162 §2.1), and the tests hold every answer here to `merkle.rs`'s
//! reference functions.
//!
//! - The **frontier** (RFC 9162's compact range of `[0, n)`) is the roots of the perfect subtrees
//!   that make up the tree of `n` leaves, largest first: one per bit set in `n`, at most
//!   log2(n) + 1 hashes. Appending a leaf merges equal-sized roots, as a binary counter carries;
//!   the root is the frontier folded from the right.
//! - Every perfect subtree completed on the way (`NodeId`: `2^level` leaves from
//!   `index · 2^level`), leaves included, is stored once. Any root RFC 9162's proofs need is then
//!   a fold of O(log n) stored nodes (`Nodes`), and `needed` says which ones before they are
//!   fetched.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::merkle::{Hash, node_hash};

/// A perfect subtree of the log: the `2^level` leaves from `index · 2^level` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u32,
    pub index: u64,
}

/// The tree's compact range: its size and the roots of its perfect subtrees, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier as stored; none when the hashes cannot be that of a tree of `size` leaves.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(Self { size, hashes })
    }

    /// The frontier of a tree built from all its leaves (once, for a log kept before frontiers).
    /// Answers every node completed on the way, as `append` does.
    pub fn build(leaves: &[Hash]) -> (Self, Vec<(NodeId, Hash)>) {
        let mut frontier = Self::new();
        let mut completed = Vec::with_capacity(leaves.len() * 2);
        for leaf in leaves {
            frontier.append(*leaf, &mut completed);
        }
        (frontier, completed)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The perfect subtrees that make up the tree of `size` leaves, largest first.
    pub fn ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0;
        for level in (0..64).rev() {
            if size >> level & 1 == 1 {
                ids.push(NodeId { level, index: start >> level });
                start += 1 << level;
            }
        }
        ids
    }

    /// Appends a leaf hash; pushes onto `completed` every perfect subtree it completes, the leaf
    /// itself first: O(log n) hashes.
    pub fn append(&mut self, leaf: Hash, completed: &mut Vec<(NodeId, Hash)>) {
        let mut id = NodeId { level: 0, index: self.size };
        let mut hash = leaf;
        completed.push((id, hash));
        // Each lower bit set in the size is a subtree of the same size just left of this one.
        while self.size >> id.level & 1 == 1 {
            let left = self.hashes.pop().expect("one frontier hash per bit set in the size");
            hash = node_hash(&left, &hash);
            id = NodeId { level: id.level + 1, index: id.index >> 1 };
            completed.push((id, hash));
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    /// MTH of the whole tree, from the frontier alone.
    pub fn root(&self) -> Hash {
        let mut hashes = self.hashes.iter().rev();
        match hashes.next() {
            None => Sha256::digest([]).into(),
            Some(last) => hashes.fold(*last, |right, left| node_hash(left, &right)),
        }
    }
}

/// Roots and proofs of any tree up to the log's size, from the stored nodes that `lookup`
/// answers (none: a node is missing).
pub struct Nodes<'a> {
    lookup: &'a mut dyn FnMut(NodeId) -> Option<Hash>,
}

impl<'a> Nodes<'a> {
    pub fn new(lookup: &'a mut dyn FnMut(NodeId) -> Option<Hash>) -> Self {
        Self { lookup }
    }

    /// MTH(D[start:end]), end > start.
    fn range_root(&mut self, start: u64, end: u64) -> Option<Hash> {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let level = n.trailing_zeros();
            return (self.lookup)(NodeId { level, index: start >> level });
        }
        let k = split(n);
        let left = self.range_root(start, start + k)?;
        let right = self.range_root(start + k, end)?;
        Some(node_hash(&left, &right))
    }

    /// MTH of the tree of the first `size` leaves.
    pub fn root(&mut self, size: u64) -> Option<Hash> {
        if size == 0 { Some(Sha256::digest([]).into()) } else { self.range_root(0, size) }
    }

    pub fn leaf(&mut self, index: u64) -> Option<Hash> {
        (self.lookup)(NodeId { level: 0, index })
    }

    /// PATH(index, D[size]), as `merkle::inclusion_proof`.
    pub fn inclusion_proof(&mut self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size {
            return None;
        }
        let mut proof = vec![];
        self.path(index, 0, size, &mut proof)?;
        Some(proof)
    }

    fn path(&mut self, m: u64, start: u64, end: u64, proof: &mut Vec<Hash>) -> Option<()> {
        let n = end - start;
        if n <= 1 {
            return Some(());
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, proof)?;
            proof.push(self.range_root(start + k, end)?);
        } else {
            self.path(m - k, start + k, end, proof)?;
            proof.push(self.range_root(start, start + k)?);
        }
        Some(())
    }

    /// PROOF(first, D[second]), as `merkle::consistency_proof`.
    pub fn consistency_proof(&mut self, first: u64, second: u64) -> Option<Vec<Hash>> {
        if first == 0 || first > second {
            return None;
        }
        let mut proof = vec![];
        self.subproof(first, 0, second, true, &mut proof)?;
        Some(proof)
    }

    fn subproof(&mut self, m: u64, start: u64, end: u64, complete: bool, proof: &mut Vec<Hash>) -> Option<()> {
        let n = end - start;
        if m == n {
            if !complete {
                proof.push(self.range_root(start, end)?);
            }
            return Some(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, complete, proof)?;
            proof.push(self.range_root(start + k, end)?);
        } else {
            self.subproof(m - k, start + k, end, false, proof)?;
            proof.push(self.range_root(start, start + k)?);
        }
        Some(())
    }
}

/// The stored nodes that `ask` reads, in (level, index) order: what to fetch before asking
/// again with the nodes at hand. (What is read depends on sizes and indexes, never on hashes.)
pub fn needed(ask: impl FnOnce(&mut Nodes<'_>)) -> Vec<NodeId> {
    let mut seen = BTreeSet::new();
    let mut record = |id: NodeId| {
        seen.insert(id);
        Some([0u8; 32])
    };
    ask(&mut Nodes::new(&mut record));
    seen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::merkle::{self, leaf_hash};

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    /// Every perfect subtree's root, computed from the leaves by the reference function.
    fn reference_node(leaves: &[Hash], id: NodeId) -> Option<Hash> {
        let start = (id.index as usize).checked_mul(1 << id.level)?;
        let end = start + (1 << id.level);
        (end <= leaves.len()).then(|| merkle::root(&leaves[start..end]))
    }

    /// A small deterministic generator (xorshift), for chunk sizes.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn the_root_from_the_frontier_is_the_root_of_all_leaves_at_every_size() {
        let all = leaves(300);
        let mut frontier = Frontier::new();
        let mut completed = vec![];
        assert_eq!(frontier.root(), merkle::root(&[]));
        for n in 1..=300 {
            frontier.append(all[n - 1], &mut completed);
            assert_eq!(frontier.size(), n as u64);
            assert_eq!(frontier.hashes().len(), n.count_ones() as usize, "one root per bit of {n}");
            assert_eq!(frontier.root(), merkle::root(&all[..n]), "root of {n} leaves");
            // The frontier is exactly the perfect subtrees that make up the tree.
            let expected: Vec<Hash> =
                Frontier::ids(n as u64).into_iter().map(|id| reference_node(&all, id).unwrap()).collect();
            assert_eq!(frontier.hashes(), &expected[..], "frontier of {n}");
        }
    }

    #[test]
    fn appends_in_chunks_of_any_size_through_storage_give_the_same_tree() {
        let all = leaves(300);
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            // As the writer does: load the stored frontier, append a chunk, store it again.
            let mut stored: (u64, Vec<Hash>) = (0, vec![]);
            let mut nodes: HashMap<NodeId, Hash> = HashMap::new();
            let mut at = 0;
            while at < all.len() {
                let chunk = (1 + rng.below(if seed % 2 == 0 { 5 } else { 70 }) as usize).min(all.len() - at);
                let mut frontier = Frontier::from_parts(stored.0, stored.1.clone()).expect("a stored frontier");
                let mut completed = vec![];
                for leaf in &all[at..at + chunk] {
                    frontier.append(*leaf, &mut completed);
                }
                for (id, hash) in completed {
                    assert!(nodes.insert(id, hash).is_none(), "{id:?} completed twice");
                }
                at += chunk;
                assert_eq!(frontier.root(), merkle::root(&all[..at]), "seed {seed}, {at} leaves");
                stored = (frontier.size(), frontier.hashes().to_vec());
            }
            // Every perfect subtree was stored once, with the reference root.
            for (id, hash) in &nodes {
                assert_eq!(Some(*hash), reference_node(&all, *id), "{id:?}");
            }
            assert_eq!(nodes.len(), (0..=8).map(|level| all.len() >> level).sum::<usize>());
        }
        let (built, completed) = Frontier::build(&all);
        assert_eq!(built.root(), merkle::root(&all));
        assert_eq!(completed.len(), (0..=8).map(|level| all.len() >> level).sum::<usize>());
        assert!(Frontier::from_parts(3, vec![all[0]]).is_none(), "three leaves make two subtrees");
    }

    #[test]
    fn proofs_from_stored_nodes_are_the_reference_proofs() {
        let all = leaves(70);
        let (_, completed) = Frontier::build(&all);
        let stored: HashMap<NodeId, Hash> = completed.into_iter().collect();
        let mut lookup = |id: NodeId| stored.get(&id).copied();
        let mut nodes = Nodes::new(&mut lookup);
        assert_eq!(nodes.root(0), Some(merkle::root(&[])));
        for n in 1..=all.len() {
            let tree = &all[..n];
            assert_eq!(nodes.root(n as u64), Some(merkle::root(tree)), "root of {n}");
            for m in 0..n {
                assert_eq!(nodes.leaf(m as u64), Some(tree[m]));
                assert_eq!(
                    nodes.inclusion_proof(m as u64, n as u64),
                    merkle::inclusion_proof(m, tree),
                    "inclusion of {m} in {n}"
                );
            }
            for m in 1..=n {
                assert_eq!(
                    nodes.consistency_proof(m as u64, n as u64),
                    merkle::consistency_proof(m, tree),
                    "consistency of {m} with {n}"
                );
            }
            assert_eq!(nodes.inclusion_proof(n as u64, n as u64), None);
            assert_eq!(nodes.consistency_proof(0, n as u64), None);
            assert_eq!(nodes.consistency_proof(n as u64 + 1, n as u64), None);
        }
    }

    #[test]
    fn what_a_proof_needs_is_few_nodes_and_enough() {
        let all = leaves(300);
        let (_, completed) = Frontier::build(&all);
        let stored: HashMap<NodeId, Hash> = completed.into_iter().collect();
        for (m, n) in [(0u64, 1u64), (5, 300), (299, 300), (128, 257), (17, 64)] {
            let ids = needed(|t| {
                t.inclusion_proof(m, n);
                t.root(n);
                t.leaf(m);
                t.consistency_proof(m.max(1), n);
                t.root(m.max(1));
            });
            // O(log n): a handful of nodes per level at most.
            assert!(ids.len() <= 4 * 10, "{m} in {n}: {} nodes", ids.len());
            // With only those at hand, the answers are the reference ones.
            let mut lookup = |id: NodeId| ids.contains(&id).then(|| stored[&id]);
            let mut nodes = Nodes::new(&mut lookup);
            let tree = &all[..n as usize];
            assert_eq!(nodes.inclusion_proof(m, n), merkle::inclusion_proof(m as usize, tree));
            assert_eq!(nodes.consistency_proof(m.max(1), n), merkle::consistency_proof(m.max(1) as usize, tree));
            assert_eq!(nodes.root(n), Some(merkle::root(tree)));
        }
        // A node that is not stored is no answer.
        let mut missing = |_: NodeId| None;
        assert_eq!(Nodes::new(&mut missing).inclusion_proof(0, 2), None);
    }
}
