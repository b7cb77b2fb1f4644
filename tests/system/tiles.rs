//! The public log read as C2SP tlog-tiles by a verifier written here from the specifications
//! alone (`c2sp.org/tlog-tiles`, `c2sp.org/tlog-checkpoint`, `c2sp.org/signed-note`, RFC 9162
//! hashing), with no project code: the signed checkpoint checks against the published verifier
//! key, the level-0 tiles and the entry bundles agree leaf by leaf, the root recomputed from them
//! is the checkpoint's, and the level-1 tile holds the root of each full level-0 tile. A hash
//! changed in the database is named by its index.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::testing::{Stack, WebhookReceiver, eventually};

use crate::support::*;

type Hash = [u8; 32];

fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(data).finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().into()
}

/// RFC 9162 §2.1.1: the Merkle tree hash of leaf hashes, split at the largest power of two
/// smaller than their number.
fn tree_hash(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// tlog-tiles: N in groups of three digits, all but the last prefixed with `x`.
fn tile_index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// The tiles of one level (`0`, `1`, or `entries`) a tree of `count` nodes at that level needs:
/// the full ones, then a partial one.
fn tile_paths(head: &str, count: u64) -> Vec<(String, u64)> {
    let mut paths: Vec<(String, u64)> =
        (0..count / 256).map(|n| (format!("tile/{head}/{}", tile_index(n)), 256)).collect();
    if !count.is_multiple_of(256) {
        paths.push((format!("tile/{head}/{}.p/{}", tile_index(count / 256), count % 256), count % 256));
    }
    paths
}

async fn fetch(stack: &Stack, path: &str) -> reqwest::Response {
    stack.http.get(format!("{}/{path}", stack.url("publication"))).send().await.expect("publication answers")
}

async fn bytes(stack: &Stack, path: &str) -> Vec<u8> {
    let response = fetch(stack, path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.bytes().await.expect("body").to_vec()
}

/// The checkpoint as the spec reads it: (origin, size, root), once its signature checks.
fn read_checkpoint(note: &str, verifier_key: &str) -> (String, u64, Hash) {
    let (name, rest) = verifier_key.split_once('+').expect("name+id+key");
    let (id, key) = rest.split_once('+').expect("id+key");
    let key = B64.decode(key).expect("base64 key");
    assert_eq!(key[0], 1, "an Ed25519 verifier key");
    let key = VerifyingKey::from_bytes(&key[1..].try_into().expect("32 bytes")).expect("a key");
    let expected_id: [u8; 4] =
        Sha256::new().chain_update(name.as_bytes()).chain_update(b"\n\x01").chain_update(key.as_bytes()).finalize()
            [..4]
            .try_into()
            .unwrap();
    assert_eq!(hex::encode(expected_id), id, "the key id is the hash of name and key");
    let (text, signatures) = note.split_once("\n\n").expect("a blank line before the signatures");
    let text = format!("{text}\n");
    let signed = signatures.lines().any(|line| {
        let Some((who, signature)) = line.strip_prefix("\u{2014} ").and_then(|l| l.split_once(' ')) else {
            return false;
        };
        let signature = B64.decode(signature).unwrap_or_default();
        who == name
            && signature.len() == 68
            && signature[..4] == expected_id
            && key.verify(text.as_bytes(), &Signature::from_bytes(&signature[4..].try_into().unwrap())).is_ok()
    });
    assert!(signed, "the checkpoint is signed by {name}:\n{note}");
    let mut lines = text.lines();
    let origin = lines.next().expect("origin").to_string();
    let size: u64 = lines.next().and_then(|l| l.parse().ok()).expect("tree size");
    let root: Hash = B64.decode(lines.next().expect("root")).expect("base64 root").try_into().expect("32 bytes");
    (origin, size, root)
}

/// Fetches the level-0 tiles and entry bundles of a tree of `size` and checks them against each
/// other; the leaf hashes, or the index of the first leaf whose entry does not hash to it.
async fn leaves(stack: &Stack, size: u64) -> Result<Vec<Hash>, u64> {
    let mut hashes = Vec::new();
    for (path, width) in tile_paths("0", size) {
        let tile = bytes(stack, &path).await;
        assert_eq!(tile.len() as u64, 32 * width, "{path} holds {width} hashes");
        hashes.extend(tile.chunks(32).map(|c| Hash::try_from(c).unwrap()));
    }
    let mut index = 0u64;
    for (path, width) in tile_paths("entries", size) {
        let mut bundle = &bytes(stack, &path).await[..];
        for _ in 0..width {
            let length = u16::from_be_bytes([bundle[0], bundle[1]]) as usize;
            let entry = &bundle[2..2 + length];
            if leaf_hash(entry) != hashes[index as usize] {
                return Err(index);
            }
            bundle = &bundle[2 + length..];
            index += 1;
        }
        assert!(bundle.is_empty(), "{path} holds exactly {width} entries");
    }
    Ok(hashes)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_read_as_c2sp_tiles_by_an_independent_verifier_agrees_with_its_signed_checkpoint() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    // 150 problems, each logged as reported and as handed over: 300 entries, one full tile.
    let reports: Vec<Value> = (0..150)
        .map(|i| inspection(if i % 2 == 0 { XINGTAI } else { HANDAN }, None, &format!("瓦片厂 {i}"), &["dust"]))
        .collect();
    for chunk in reports.chunks(50) {
        batch(&stack, chunk.to_vec()).await;
    }
    let size = eventually("a checkpoint of 300 entries", WAIT, || async {
        let (_, chain) = get(&stack, "publication", "/v1/chain", None).await;
        let size = chain["checkpoint"]["tree_size"].as_u64()?;
        (size >= 300 && chain["size"].as_u64() == Some(size)).then_some(size)
    })
    .await;

    let (_, key) = get(&stack, "publication", "/v1/chain/key", None).await;
    let verifier_key = key["verifier_key"].as_str().expect("a verifier key").to_string();
    let response = fetch(&stack, "checkpoint").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let note = response.text().await.unwrap();
    let (origin, checkpoint_size, root) = read_checkpoint(&note, &verifier_key);
    assert_eq!(checkpoint_size, size);
    assert!(verifier_key.starts_with(&format!("{origin}+")), "the key is named by the log's origin");

    let hashes = leaves(&stack, size).await.expect("every entry hashes to its leaf");
    assert_eq!(tree_hash(&hashes), root, "the root recomputed from the tiles is the checkpoint's");
    // Level 1: one node per full level-0 tile, each the root of its 256 leaves.
    let upper = bytes(&stack, &format!("tile/1/000.p/{}", size / 256)).await;
    for (n, node) in upper.chunks(32).enumerate() {
        assert_eq!(node, tree_hash(&hashes[n * 256..(n + 1) * 256]), "level-1 node {n}");
    }

    // Tiles never change: cacheable for good; what the log does not hold whole yet is 404.
    let full = fetch(&stack, "tile/0/000").await;
    assert!(full.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    for missing in [format!("tile/0/{}", tile_index(size / 256)), "tile/0/x001/000".into(), "tile/0/1".into()] {
        let response = fetch(&stack, &missing).await;
        assert_eq!(response.status(), 404, "{missing}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"));
    }

    // A leaf hash changed in the database: the tiles no longer agree with the entries there.
    let pool = stack.db.pool().await;
    sqlx::query("UPDATE publication.log_nodes SET hash = sha256(hash) WHERE level = 0 AND idx = 7")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(leaves(&stack, size).await.err(), Some(7), "the changed leaf is named");
}
