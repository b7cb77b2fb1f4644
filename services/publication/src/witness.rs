//! Witnessing the public log: cosignatures (`c2sp.org/tlog-cosignature`, Ed25519, type 0x04)
//! and the witness's checks on an `add-checkpoint` request (`c2sp.org/tlog-witness`). Pure
//! code: `skyledger witness` serves it over HTTP and keeps its state; the publication service
//! asks witnesses for cosignatures and checks what they answer.
//!
//! - A witness is named (a schema-less URL, say `witness.bureau.example/1`) and holds an Ed25519
//!   key; its verifier key is `{name}+{key id, hex}+{base64(0x04 || public key)}`, the key id
//!   being the first four bytes of `SHA-256(name || "\n" || 0x04 || public key)`.
//! - It signs `cosignature/v1\ntime {unix seconds}\n` followed by the checkpoint's whole note
//!   body, and answers the note signature line `— {name} base64(key id || 8-byte big-endian
//!   time || 64-byte signature)`.
//! - It cosigns a checkpoint only when it extends, by a valid consistency proof, the last one it
//!   cosigned for that log: a log that shows two different trees of one size (a fork) or a
//!   smaller one is refused.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::merkle::{self, Hash};
use crate::public_log::{key_id, parse_verifier_key};

/// The signature type of an Ed25519 cosignature (`cosignature/v1`).
pub const COSIGNATURE_V1: u8 = 0x04;

/// At most this many consistency proof lines in a request (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// The message a cosignature signs: the header line, the time line, the checkpoint's note body.
fn cosigned_message(body: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

/// A witness's signing key and name.
pub struct Cosigner {
    key: SigningKey,
    pub name: String,
}

impl Cosigner {
    /// The key file holds the Ed25519 seed in hex, like the log's; created on first use.
    pub fn load_or_create(path: &Path, name: &str) -> anyhow::Result<Self> {
        Ok(Self { key: shared::auth::load_or_create_signing_key(path)?, name: name.into() })
    }

    pub fn generate(name: &str) -> Self {
        Self { key: SigningKey::generate(&mut rand::rngs::OsRng), name: name.into() }
    }

    /// `{name}+{key id}+{base64(0x04 || public key)}`: what a log and its readers are given to
    /// trust this witness.
    pub fn verifier_key(&self) -> String {
        let key = self.key.verifying_key();
        let mut encoded = vec![COSIGNATURE_V1];
        encoded.extend_from_slice(key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(key_id(&self.name, COSIGNATURE_V1, &key)), B64.encode(encoded))
    }

    /// The cosignature line over the checkpoint note body `body`, made at `time` (unix
    /// seconds), newline-terminated.
    pub fn cosign(&self, body: &str, time: u64) -> String {
        let signature = self.key.sign(cosigned_message(body, time).as_bytes());
        let mut bytes = key_id(&self.name, COSIGNATURE_V1, &self.key.verifying_key()).to_vec();
        bytes.extend_from_slice(&time.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        format!("\u{2014} {} {}\n", self.name, B64.encode(bytes))
    }
}

/// A witness as a log or a reader trusts it: its name and public key, from its verifier key.
#[derive(Debug, Clone, PartialEq)]
pub struct WitnessKey {
    pub name: String,
    key: VerifyingKey,
}

impl WitnessKey {
    pub fn parse(vkey: &str) -> Result<Self, String> {
        let (name, key) = parse_verifier_key(vkey, COSIGNATURE_V1)?;
        Ok(Self { name, key })
    }

    /// The time (unix seconds) of this witness's valid cosignature on `body` among the
    /// signature lines `lines`, if there is one. Lines of other keys are ignored.
    pub fn cosigned(&self, body: &str, lines: &str) -> Option<u64> {
        let id = key_id(&self.name, COSIGNATURE_V1, &self.key);
        lines.lines().find_map(|line| {
            let (name, signature) = line.strip_prefix("\u{2014} ")?.split_once(' ')?;
            let bytes = B64.decode(signature).ok()?;
            if name != self.name || bytes.len() != 4 + 8 + 64 || bytes[..4] != id {
                return None;
            }
            let time = u64::from_be_bytes(bytes[4..12].try_into().ok()?);
            let signature = Signature::from_slice(&bytes[12..]).ok()?;
            self.key.verify(cosigned_message(body, time).as_bytes(), &signature).ok()?;
            Some(time)
        })
    }

    /// The valid cosignature line of this witness in `lines` over `body`, if any.
    pub fn cosignature_line<'a>(&self, body: &str, lines: &'a str) -> Option<(&'a str, u64)> {
        lines.lines().find_map(|line| self.cosigned(body, line).map(|time| (line, time)))
    }

    /// This witness's time on a whole signed note (body, blank line, signature lines).
    pub fn cosigned_note(&self, note: &str) -> Option<u64> {
        let (text, lines) = note.split_once("\n\n")?;
        self.cosigned(&format!("{text}\n"), lines)
    }
}

/// An `add-checkpoint` request body: `old {size}\n`, up to 63 base64 proof lines, a blank line,
/// the checkpoint as a signed note.
#[derive(Debug, Clone, PartialEq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub note: String,
}

impl AddCheckpoint {
    pub fn to_text(&self) -> String {
        let mut text = format!("old {}\n", self.old);
        for hash in &self.proof {
            text.push_str(&B64.encode(hash));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.note);
        text
    }

    pub fn parse(body: &str) -> Result<Self, String> {
        let (head, note) = body.split_once("\n\n").ok_or("no blank line before the checkpoint")?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| *n == "0" || (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())))
            .and_then(|n| n.parse().ok())
            .ok_or("the first line is `old {size}`, in decimal without leading zeroes")?;
        let proof: Vec<Hash> = lines
            .map(|l| B64.decode(l).ok().and_then(|h| h.try_into().ok()).ok_or("a proof line is a base64 hash"))
            .collect::<Result<_, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(format!("at most {MAX_PROOF_LINES} proof lines"));
        }
        if !note.ends_with('\n') {
            return Err("the checkpoint ends with a newline".into());
        }
        Ok(Self { old, proof, note: note.to_string() })
    }
}

/// Why a witness does not cosign, each with its tlog-witness status.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 400: a malformed request, or an old size above the checkpoint's.
    BadRequest(String),
    /// 404: no log of this origin is trusted.
    UnknownLog(String),
    /// 403: no signature of a trusted key verifies.
    BadSignature(String),
    /// 409, with the size last cosigned: the client's old size is not it.
    OldSize { cosigned: u64 },
    /// 409, with the size last cosigned: a checkpoint of that size with another root. The log
    /// forked; the witness says so loudly and never cosigns it.
    Fork { cosigned: u64 },
    /// 422: the consistency proof from the tree last cosigned does not hold (a fork, or a
    /// broken proof).
    Inconsistent,
    /// 503: the witness cannot keep its state, so it does not cosign.
    Unavailable,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::UnknownLog(_) => 404,
            Refusal::BadSignature(_) => 403,
            Refusal::OldSize { .. } | Refusal::Fork { .. } => 409,
            Refusal::Inconsistent => 422,
            Refusal::Unavailable => 503,
        }
    }
}

/// The tree a witness last cosigned for a log.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub size: u64,
    #[serde(with = "hex_hash")]
    pub root: Hash,
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &crate::merkle::Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::merkle::to_hex(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<crate::merkle::Hash, D::Error> {
        let text = String::deserialize(d)?;
        crate::merkle::from_hex(&text).ok_or_else(|| serde::de::Error::custom("a root is 32 bytes of hex"))
    }
}

/// The witness's decision on a checkpoint of `size` and `root` (its signature already checked),
/// given the tree it last cosigned for that log (`None`: never). `Ok` is the tree to remember
/// before answering with a cosignature.
pub fn check_extension(seen: Option<Seen>, old: u64, proof: &[Hash], size: u64, root: Hash) -> Result<Seen, Refusal> {
    if old > size {
        return Err(Refusal::BadRequest(format!("old size {old} is above the checkpoint's {size}")));
    }
    let cosigned = seen.map_or(0, |s| s.size);
    if old != cosigned {
        return Err(Refusal::OldSize { cosigned });
    }
    let Some(seen) = seen.filter(|s| s.size > 0) else {
        // Nothing cosigned yet: trust on first use, with an empty proof.
        return if proof.is_empty() { Ok(Seen { size, root }) } else { Err(Refusal::Inconsistent) };
    };
    if size == seen.size {
        if root != seen.root {
            return Err(Refusal::Fork { cosigned: seen.size });
        }
        return if proof.is_empty() { Ok(seen) } else { Err(Refusal::Inconsistent) };
    }
    if !merkle::verify_consistency(seen.size, size, &seen.root, &root, proof) {
        return Err(Refusal::Inconsistent);
    }
    Ok(Seen { size, root })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::public_log::{LogSigner, LogVerifier, leaf_of};

    fn leaves(n: u8) -> Vec<Hash> {
        (0..n).map(|i| leaf_of(&[i; 32])).collect()
    }

    #[test]
    fn a_cosignature_verifies_with_the_witness_key_and_nothing_else() {
        let log = LogSigner::generate("example.org/log");
        let note = log.signed_note(&log.checkpoint(3, &merkle::root(&leaves(3)), 1_700_000_000_000));
        let body = format!("{}\n", note.split_once("\n\n").unwrap().0);
        let witness = Cosigner::generate("witness.example.org/w1");
        let line = witness.cosign(&body, 1_700_000_123);
        let key = WitnessKey::parse(&witness.verifier_key()).unwrap();
        assert_eq!(key.name, "witness.example.org/w1");
        assert_eq!(key.cosigned(&body, &line), Some(1_700_000_123));
        assert_eq!(key.cosigned_note(&format!("{note}{line}")), Some(1_700_000_123));
        // The log's signature still verifies beside it.
        let verifier = LogVerifier::from_verifier_key(&log.verifier_key()).unwrap();
        assert!(verifier.note(&format!("{note}{line}")).is_ok());

        assert_eq!(key.cosigned(&body.replace('3', "4"), &line), None, "a changed checkpoint");
        let other = WitnessKey::parse(&Cosigner::generate("witness.example.org/w1").verifier_key()).unwrap();
        assert_eq!(other.cosigned(&body, &line), None, "another key of the same name");
        // The time is signed: changing it breaks the signature.
        let (prefix, b64) = line.trim_end().rsplit_once(' ').unwrap();
        let mut bytes = B64.decode(b64).unwrap();
        bytes[11] ^= 1;
        assert_eq!(key.cosigned(&body, &format!("{prefix} {}", B64.encode(bytes))), None);
        // A log key is not a witness key, and the reverse.
        assert!(WitnessKey::parse(&log.verifier_key()).is_err());
        assert!(LogVerifier::from_verifier_key(&witness.verifier_key()).is_err());
    }

    #[test]
    fn the_specs_example_cosignature_has_the_specs_layout() {
        // c2sp.org/tlog-cosignature's example line, and the time of its example message.
        let line =
            "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
        let bytes = B64.decode(line).unwrap();
        assert_eq!(bytes.len(), 4 + 8 + 64);
        assert_eq!(u64::from_be_bytes(bytes[4..12].try_into().unwrap()), 1_679_315_147);
        // And a line of ours the same layout: key id, big-endian time, signature.
        let witness = Cosigner::generate("witness.example.com/w1");
        let ours = witness.cosign("example.com/behind-the-sofa\n20852163\nx\n", 1_679_315_147);
        let ours = B64.decode(ours.trim_end().rsplit_once(' ').unwrap().1).unwrap();
        assert_eq!(ours[4..12], bytes[4..12]);
        let vkey = witness.verifier_key();
        assert_eq!(hex::encode(&ours[..4]), vkey.split('+').nth(1).unwrap());
        assert_eq!(B64.decode(vkey.splitn(3, '+').nth(2).unwrap()).unwrap()[0], 0x04);
    }

    #[test]
    fn a_request_body_reads_back() {
        let request = AddCheckpoint { old: 5, proof: leaves(2), note: "o\n7\nAAAA\n\n\u{2014} o x\n".into() };
        assert_eq!(AddCheckpoint::parse(&request.to_text()), Ok(request));
        let first = AddCheckpoint { old: 0, proof: vec![], note: "o\n1\nAAAA\n\n\u{2014} o x\n".into() };
        assert_eq!(first.to_text(), "old 0\n\no\n1\nAAAA\n\n\u{2014} o x\n");
        assert_eq!(AddCheckpoint::parse(&first.to_text()), Ok(first));
        assert!(AddCheckpoint::parse("old 05\n\no\n").is_err(), "leading zeroes");
        assert!(AddCheckpoint::parse("old 5\nnot base64!\n\no\n").is_err());
        assert!(AddCheckpoint::parse("5\n\no\n").is_err());
    }

    #[test]
    fn a_witness_cosigns_growth_and_refuses_forks_and_shrinks() {
        let all = leaves(9);
        let root = |n: usize| merkle::root(&all[..n]);
        let proof = |m: usize, n: usize| merkle::consistency_proof(m, &all[..n]).unwrap();

        // First sight: old 0, no proof.
        let seen = check_extension(None, 0, &[], 4, root(4)).unwrap();
        assert_eq!(seen, Seen { size: 4, root: root(4) });
        assert_eq!(check_extension(None, 3, &[], 4, root(4)), Err(Refusal::OldSize { cosigned: 0 }));
        // Growth with a proof from the size cosigned.
        let seen = check_extension(Some(seen), 4, &proof(4, 7), 7, root(7)).unwrap();
        assert_eq!(seen.size, 7);
        // The same checkpoint again: cosigned again.
        assert_eq!(check_extension(Some(seen), 7, &[], 7, root(7)), Ok(seen));
        // The client's old size is not the one cosigned: 409 with it.
        assert_eq!(check_extension(Some(seen), 4, &proof(4, 9), 9, root(9)), Err(Refusal::OldSize { cosigned: 7 }));
        // A fork: the same size, another root.
        let forked = merkle::root(&[&all[..6], &[leaf_of(&[99; 32])]].concat());
        let refused = check_extension(Some(seen), 7, &[], 7, forked);
        assert_eq!(refused, Err(Refusal::Fork { cosigned: 7 }));
        assert_eq!(refused.unwrap_err().status(), 409);
        // A fork that grew: no proof from the tree cosigned holds.
        let mut other = all.clone();
        other[2] = leaf_of(&[98; 32]);
        let other_proof = merkle::consistency_proof(7, &other).unwrap();
        let refused = check_extension(Some(seen), 7, &other_proof, 9, merkle::root(&other));
        assert_eq!(refused, Err(Refusal::Inconsistent));
        assert_eq!(check_extension(Some(seen), 7, &proof(7, 9), 9, merkle::root(&other)), Err(Refusal::Inconsistent));
        // A shrink: smaller than the size cosigned.
        assert!(matches!(check_extension(Some(seen), 7, &[], 5, root(5)), Err(Refusal::BadRequest(_))));
        assert_eq!(check_extension(Some(seen), 5, &[], 5, root(5)), Err(Refusal::OldSize { cosigned: 7 }));
    }
}
