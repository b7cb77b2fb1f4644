//! The log as C2SP tlog-tiles (`c2sp.org/tlog-tiles`): what a tile's path names, and how an
//! entry bundle is laid out. Pure functions; `api.rs` serves them from the stored subtrees.
//!
//! A tile is 256 hashes at one level of tiles: the hashes of tile level `L` are the tree's nodes
//! at height `8·L`, and tile `N` holds nodes `256·N …`. Every such node is a perfect subtree the
//! writer stored when it completed (`log_nodes`), so a tile is one range of stored rows. A tile
//! that is not full yet is asked for with its width: `tile/0/x001/234.p/17`. Entry bundles
//! (`tile/entries/N`) hold the leaves' data: here the entry's content hash (32 bytes), since a
//! leaf is `SHA-256(0x00 || content_hash)` so that a withdrawn entry keeps its place.

/// Hashes in a full tile (tile height 8).
pub const TILE_WIDTH: u64 = 256;
/// Tree levels one tile level spans.
pub const TILE_HEIGHT: u32 = 8;

/// What a path under `tile/` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// Tile `index` of tile level `level`, `width` hashes (256 when full).
    Hashes { level: u32, index: u64, width: u64 },
    /// The entries of tile `index` of level 0, `width` of them.
    Entries { index: u64, width: u64 },
}

impl Tile {
    /// The tree level of the hashes and the first node's index among them.
    pub fn nodes(&self) -> (u32, u64) {
        match *self {
            Tile::Hashes { level, index, .. } => (level * TILE_HEIGHT, index * TILE_WIDTH),
            Tile::Entries { index, .. } => (0, index * TILE_WIDTH),
        }
    }

    pub fn width(&self) -> u64 {
        match *self {
            Tile::Hashes { width, .. } | Tile::Entries { width, .. } => width,
        }
    }

    pub fn is_full(&self) -> bool {
        self.width() == TILE_WIDTH
    }

    /// Whether a tree of `size` leaves holds every node of the tile.
    pub fn within(&self, size: u64) -> bool {
        let (level, first) = self.nodes();
        let complete = size >> level;
        first + self.width() <= complete
    }

    /// The tile's path, as `parse` reads it (`tile/1/x002/417.p/9`).
    pub fn path(&self) -> String {
        let (head, index) = match *self {
            Tile::Hashes { level, index, .. } => (level.to_string(), index),
            Tile::Entries { index, .. } => ("entries".to_string(), index),
        };
        let width = if self.is_full() { String::new() } else { format!(".p/{}", self.width()) };
        format!("tile/{head}/{}{width}", index_path(index))
    }
}

/// `N` as C2SP writes it: groups of three digits, every group but the last prefixed with `x`.
pub fn index_path(index: u64) -> String {
    let digits = index.to_string();
    let padded = format!("{}{digits}", "0".repeat((3 - digits.len() % 3) % 3));
    let groups: Vec<&str> = (0..padded.len()).step_by(3).map(|i| &padded[i..i + 3]).collect();
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| if i < last { format!("x{g}") } else { g.to_string() })
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads a path after `tile/`: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`; `None` for anything
/// else (a malformed index, a width of 0 or 256 and more, a level above 63).
pub fn parse(path: &str) -> Option<Tile> {
    let (head, rest) = path.split_once('/')?;
    let (index_part, width) = match rest.split_once(".p/") {
        Some((index, width)) => {
            let width: u64 = width.parse().ok().filter(|w| (1..TILE_WIDTH).contains(w))?;
            (index, width)
        }
        None => (rest, TILE_WIDTH),
    };
    let groups: Vec<&str> = index_part.split('/').collect();
    let last = groups.len() - 1;
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let digits = if i < last { group.strip_prefix('x')? } else { group };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
    }
    // The shortest form only: no leading group of 000.
    if groups.len() > 1 && groups[0] == "x000" {
        return None;
    }
    match head {
        "entries" => Some(Tile::Entries { index, width }),
        level => {
            let level = level.parse::<u32>().ok().filter(|l| *l < 64 && level == l.to_string())?;
            Some(Tile::Hashes { level, index, width })
        }
    }
}

/// An entry bundle: each entry as a big-endian 16-bit length and its bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut bundle = Vec::new();
    for entry in entries {
        bundle.extend_from_slice(&(entry.len() as u16).to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_and_read_as_c2sp_spells_them() {
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(67), "067");
        assert_eq!(index_path(1234), "x001/234");
        assert_eq!(index_path(1_234_067), "x001/x234/067");
        for tile in [
            Tile::Hashes { level: 0, index: 0, width: 256 },
            Tile::Hashes { level: 1, index: 2417, width: 9 },
            Tile::Entries { index: 1_234_067, width: 256 },
            Tile::Entries { index: 5, width: 1 },
        ] {
            assert_eq!(parse(tile.path().strip_prefix("tile/").unwrap()), Some(tile), "{}", tile.path());
        }
        assert_eq!(Tile::Hashes { level: 1, index: 2417, width: 9 }.path(), "tile/1/x002/417.p/9");
        for bad in [
            "0/1234",
            "0/x1/234",
            "0/x001/2345",
            "0/000.p/0",
            "0/000.p/256",
            "64/000",
            "01/000",
            "0/x000/001",
            "a/000",
            "0",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_tile_is_within_a_tree_when_every_node_of_it_is_complete() {
        let full = Tile::Hashes { level: 0, index: 1, width: 256 };
        assert!(!full.within(511) && full.within(512));
        let partial = Tile::Hashes { level: 0, index: 1, width: 3 };
        assert!(!partial.within(258) && partial.within(259));
        // Level 1: nodes of height 8, one per 256 leaves.
        let upper = Tile::Hashes { level: 1, index: 0, width: 2 };
        assert!(!upper.within(511) && upper.within(512));
        assert_eq!(upper.nodes(), (8, 0));
    }

    #[test]
    fn an_entry_bundle_prefixes_each_entry_with_its_length() {
        assert_eq!(entry_bundle([&b"ab"[..], &b""[..], &[7u8; 3][..]]), [0, 2, b'a', b'b', 0, 0, 0, 3, 7, 7, 7]);
    }
}
