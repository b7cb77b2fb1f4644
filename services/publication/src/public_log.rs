//! The public log's formats and signatures, shared by the service (which appends and signs) and
//! `skyledger verify-feed` (which checks). Pure functions, no I/O but reading the key file.
//!
//! - An entry's content is a JSON text, hashed as the exact bytes served: `content_hash =
//!   SHA-256(content)`. Its leaf is `SHA-256(0x00 || content_hash)` (RFC 9162 leaf hashing over
//!   the content hash), so a withdrawn entry keeps its hash and its place: a tombstone.
//! - Each entry carries the log key's signature over `skyledger-entry/v1\n{origin}\n{index}\n
//!   {leaf hex}\n`, given when it was appended: changing an entry later cannot be hidden, even
//!   by recomputing the tree.
//! - A checkpoint (signed tree head) is a C2SP tlog-checkpoint: `{origin}\n{tree size}\n{root,
//!   base64}\ntimestamp {unix millis}\n` (the last an extension line), signed with Ed25519, and
//!   served as a C2SP signed note (`/checkpoint`): the body, a blank line, and `— {origin}
//!   {base64(key id || signature)}`, checkable with the verifier key `LogSigner::verifier_key`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::merkle::{self, Hash};

/// What one public entry says. Field order is fixed by this struct, and the text is kept as
/// served, so nobody has to agree on a canonical JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryContent {
    pub index: i64,
    /// `step`, `note`, `typical_case`, `correction`, `retraction` or `takedown`.
    pub kind: String,
    pub problem_id: Uuid,
    pub at: String,
    pub status: String,
    pub what: String,
}

impl EntryContent {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("entry content serialises")
    }
}

pub fn content_hash(content: &str) -> Hash {
    Sha256::digest(content.as_bytes()).into()
}

pub fn leaf_of(content_hash: &Hash) -> Hash {
    merkle::leaf_hash(content_hash)
}

fn entry_statement(origin: &str, index: i64, leaf: &Hash) -> String {
    format!("skyledger-entry/v1\n{origin}\n{index}\n{}\n", merkle::to_hex(leaf))
}

/// A signed tree head.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: i64,
    /// Hex.
    pub root_hash: String,
    /// Unix milliseconds.
    pub timestamp: i64,
    /// The signed note text.
    pub body: String,
    /// Base64 Ed25519 signature over `body`.
    pub signature: String,
}

pub fn checkpoint_body(origin: &str, tree_size: i64, root: &Hash, timestamp: i64) -> String {
    format!("{origin}\n{tree_size}\n{}\ntimestamp {timestamp}\n", B64.encode(root))
}

/// The C2SP signed-note key id of the Ed25519 key `key` named `name`: the first four bytes of
/// `SHA-256(name || "\n" || 0x01 || key)`.
fn note_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    key_id(name, 0x01, key)
}

/// Reads a C2SP verifier key `{name}+{key id, hex}+{base64(type || key)}` of an Ed25519 key of
/// signature type `kind` (0x01 a log's note signature, 0x04 a cosignature), checking that its
/// key id is the one its name and key make.
pub(crate) fn parse_verifier_key(vkey: &str, kind: u8) -> Result<(String, VerifyingKey), String> {
    // The name holds no '+', the base64 key may: three parts from the left.
    let mut parts = vkey.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a verifier key is name+id+key".into());
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a verifier key's name is not empty and has no spaces".into());
    }
    let key = B64.decode(key).map_err(|_| "a verifier key's key is base64")?;
    if key.len() != 33 || key[0] != kind {
        return Err(format!("not an Ed25519 verifier key of type 0x{kind:02x}"));
    }
    let key = VerifyingKey::from_bytes(&key[1..].try_into().expect("32 bytes"))
        .map_err(|_| "a verifier key's key is not an Ed25519 public key")?;
    if hex::encode(key_id(name, kind, &key)) != id {
        return Err("a verifier key's id is not that of its name and key".into());
    }
    Ok((name.to_string(), key))
}

/// A C2SP signed-note key id: the first four bytes of `SHA-256(name || "\n" || type || key)`.
pub(crate) fn key_id(name: &str, kind: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', kind]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The log's signing key (`publication.checkpoint_key_file`) and its origin line.
pub struct LogSigner {
    key: SigningKey,
    pub origin: String,
}

impl LogSigner {
    pub fn load_or_create(path: &Path, origin: String) -> anyhow::Result<Self> {
        Ok(Self { key: shared::auth::load_or_create_signing_key(path)?, origin })
    }

    pub fn generate(origin: &str) -> Self {
        Self { key: SigningKey::generate(&mut rand::rngs::OsRng), origin: origin.into() }
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// The C2SP verifier key of the log, named by its origin: `{origin}+{key id, hex}+{base64(0x01
    /// || public key)}`, what any signed-note tool takes to check `/checkpoint`.
    pub fn verifier_key(&self) -> String {
        let key = self.key.verifying_key();
        let mut encoded = vec![0x01];
        encoded.extend_from_slice(key.as_bytes());
        format!("{}+{}+{}", self.origin, hex::encode(note_key_id(&self.origin, &key)), B64.encode(encoded))
    }

    /// A checkpoint as a C2SP signed note: its body, a blank line, and its signature line (the
    /// stored signature is over the body, which is what the note signs).
    pub fn signed_note(&self, c: &Checkpoint) -> String {
        let mut signature = note_key_id(&c.origin, &self.key.verifying_key()).to_vec();
        signature.extend(B64.decode(&c.signature).unwrap_or_default());
        format!("{}\n\u{2014} {} {}\n", c.body, c.origin, B64.encode(signature))
    }

    pub fn sign_entry(&self, index: i64, leaf: &Hash) -> String {
        B64.encode(self.key.sign(entry_statement(&self.origin, index, leaf).as_bytes()).to_bytes())
    }

    pub fn checkpoint(&self, tree_size: i64, root: &Hash, timestamp: i64) -> Checkpoint {
        let body = checkpoint_body(&self.origin, tree_size, root, timestamp);
        let signature = B64.encode(self.key.sign(body.as_bytes()).to_bytes());
        Checkpoint {
            origin: self.origin.clone(),
            tree_size,
            root_hash: merkle::to_hex(root),
            timestamp,
            body,
            signature,
        }
    }
}

/// Checks signatures with the log's public key.
pub struct LogVerifier {
    key: VerifyingKey,
    pub origin: String,
}

fn signature_from(b64: &str) -> Option<Signature> {
    let bytes: [u8; 64] = B64.decode(b64).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

impl LogVerifier {
    pub fn from_hex(public_key: &str, origin: &str) -> anyhow::Result<Self> {
        let bytes: [u8; 32] = hex::decode(public_key.trim())?
            .try_into()
            .map_err(|_| anyhow::anyhow!("a public key is 32 bytes (64 hex digits)"))?;
        Ok(Self { key: VerifyingKey::from_bytes(&bytes)?, origin: origin.into() })
    }

    /// From the log's C2SP verifier key (`{origin}+{key id}+{base64(0x01 || key)}`), as
    /// `LogSigner::verifier_key` writes it: what a witness is given to trust a log.
    pub fn from_verifier_key(vkey: &str) -> Result<Self, String> {
        let (origin, key) = parse_verifier_key(vkey, 0x01)?;
        Ok(Self { key, origin })
    }

    pub fn entry_signed(&self, index: i64, leaf: &Hash, signature: &str) -> bool {
        signature_from(signature)
            .is_some_and(|s| self.key.verify(entry_statement(&self.origin, index, leaf).as_bytes(), &s).is_ok())
    }

    /// Reads a checkpoint served as a signed note (`/checkpoint`): its tree size and root, once
    /// a signature line of this log's key verifies over its text.
    pub fn note(&self, note: &str) -> Result<(i64, Hash), String> {
        let (text, signatures) =
            note.split_once("\n\n").ok_or("a signed note has a blank line before its signatures")?;
        let body = format!("{text}\n");
        let key_id = note_key_id(&self.origin, &self.key);
        let signed = signatures.lines().any(|line| {
            let Some((name, signature)) = line.strip_prefix("\u{2014} ").and_then(|l| l.split_once(' ')) else {
                return false;
            };
            let signature = B64.decode(signature).unwrap_or_default();
            name == self.origin
                && signature.len() == 68
                && signature[..4] == key_id
                && Signature::from_slice(&signature[4..]).is_ok_and(|s| self.key.verify(body.as_bytes(), &s).is_ok())
        });
        if !signed {
            return Err("the checkpoint is not signed by the log's key".into());
        }
        let mut lines = text.lines();
        if lines.next() != Some(self.origin.as_str()) {
            return Err("checkpoint of another log".into());
        }
        let size: i64 = lines.next().and_then(|l| l.parse().ok()).ok_or("the tree size is not a number")?;
        let root: Hash = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or("the root hash is not 32 bytes of base64")?;
        Ok((size, root))
    }

    /// Checks that the checkpoint's fields are what its body says and that the body is signed.
    pub fn checkpoint(&self, c: &Checkpoint) -> Result<Hash, String> {
        let root = merkle::from_hex(&c.root_hash).ok_or("the root hash is not 32 bytes of hex")?;
        if c.origin != self.origin {
            return Err(format!("checkpoint of another log: {:?}", c.origin));
        }
        if checkpoint_body(&c.origin, c.tree_size, &root, c.timestamp) != c.body {
            return Err("the checkpoint's fields differ from its signed body".into());
        }
        let signature = signature_from(&c.signature).ok_or("the signature is not base64 Ed25519")?;
        self.key.verify(c.body.as_bytes(), &signature).map_err(|_| "the signature does not verify".to_string())?;
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_checkpoints_verify_and_changes_do_not() {
        let signer = LogSigner::generate("example.org/log");
        let verifier = LogVerifier::from_hex(&signer.public_key_hex(), "example.org/log").unwrap();
        let content = EntryContent {
            index: 0,
            kind: "step".into(),
            problem_id: Uuid::nil(),
            at: "2019-05-09T02:20:00Z".into(),
            status: "assigned".into(),
            what: "交办".into(),
        }
        .to_text();
        let leaf = leaf_of(&content_hash(&content));
        let signature = signer.sign_entry(0, &leaf);
        assert!(verifier.entry_signed(0, &leaf, &signature));
        assert!(!verifier.entry_signed(1, &leaf, &signature), "the index is signed");
        let changed = leaf_of(&content_hash(&content.replace("交办", "销号")));
        assert!(!verifier.entry_signed(0, &changed, &signature), "the content is signed");

        let checkpoint = signer.checkpoint(1, &merkle::root(&[leaf]), 1_700_000_000_000);
        assert_eq!(verifier.checkpoint(&checkpoint), Ok(leaf));
        let mut bigger = checkpoint.clone();
        bigger.tree_size = 2;
        assert!(verifier.checkpoint(&bigger).is_err());
        let mut resigned = signer.checkpoint(2, &leaf, 0);
        resigned.signature = checkpoint.signature.clone();
        assert!(verifier.checkpoint(&resigned).is_err());
        let stranger = LogSigner::generate("example.org/log").checkpoint(1, &leaf, 0);
        assert!(verifier.checkpoint(&stranger).is_err(), "another key's checkpoint");
    }

    #[test]
    fn a_checkpoint_is_a_signed_note_its_verifier_key_checks() {
        let signer = LogSigner::generate("example.org/log");
        let checkpoint = signer.checkpoint(3, &merkle::root(&[leaf_of(&[1; 32])]), 1_700_000_000_000);
        let note = signer.signed_note(&checkpoint);
        // As signed-note says: the text up to the blank line is signed; each signature line is
        // "— name base64(key id || signature)"; the verifier key is "name+id+base64(0x01 || key)".
        let (text, signatures) = note.split_once("\n\n").unwrap();
        assert_eq!(format!("{text}\n"), checkpoint.body);
        let verifier = signer.verifier_key();
        // Three parts: the base64 key may itself hold a '+'.
        let parts: Vec<&str> = verifier.splitn(3, '+').collect();
        assert_eq!(parts[0], "example.org/log");
        let key = B64.decode(parts[2]).unwrap();
        assert_eq!(key[0], 0x01, "Ed25519");
        let line = signatures.strip_suffix('\n').unwrap();
        let (name, signature) = line.strip_prefix("\u{2014} ").unwrap().split_once(' ').unwrap();
        assert_eq!(name, parts[0]);
        let signature = B64.decode(signature).unwrap();
        assert_eq!(hex::encode(&signature[..4]), parts[1], "the key id");
        let key = VerifyingKey::from_bytes(&key[1..].try_into().unwrap()).unwrap();
        let signature = Signature::from_bytes(&signature[4..].try_into().unwrap());
        assert!(key.verify(checkpoint.body.as_bytes(), &signature).is_ok());
        assert!(key.verify(checkpoint.body.replace('3', "4").as_bytes(), &signature).is_err());
    }
}
