//! The normalised record model: one row per Claude Code log record or metric point, in columns,
//! with repeated strings interned as integer ids.

type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// Record kinds.
pub const EVENT: u8 = 0;
pub const METRIC: u8 = 1;

/// Temporality of a metric point (OTLP `AggregationTemporality`); events and gauges are `DELTA`.
pub const DELTA: u8 = 1;
pub const CUMULATIVE: u8 = 2;

/// Strings every dictionary holds at fixed ids, so that transforms can compare ids, not text.
pub mod sym {
    pub const NONE: u32 = 0;
    pub const API_REQUEST: u32 = 1;
    pub const TOOL_DECISION: u32 = 2;
    pub const M_COST: u32 = 3;
    pub const M_TOKEN: u32 = 4;
    pub const M_DECISION: u32 = 5;
    pub const M_LINES: u32 = 6;
    pub const M_COMMIT: u32 = 7;
    pub const M_PR: u32 = 8;
    pub const M_SESSION: u32 = 9;
    pub const AGENTS_VIEW: u32 = 10;
    pub const ACCEPT: u32 = 11;
    pub const REJECT: u32 = 12;
    pub const ADDED: u32 = 13;
    pub const REMOVED: u32 = 14;
    pub const INPUT: u32 = 15;
    pub const OUTPUT: u32 = 16;
    pub const CACHE_READ: u32 = 17;
    pub const CACHE_CREATION: u32 = 18;
    pub const EDIT: u32 = 19;
    pub const MULTI_EDIT: u32 = 20;
    pub const WRITE: u32 = 21;
    pub const NOTEBOOK_EDIT: u32 = 22;
    pub const UNKNOWN_MODEL: u32 = 23;
    /// The edit tools, in the order of `schema::EDIT_TOOLS`.
    pub const EDIT_TOOLS: [u32; 4] = [EDIT, MULTI_EDIT, WRITE, NOTEBOOK_EDIT];
}

use crate::schema::otel;
const SEEDED: [&str; 24] = [
    "",
    otel::EV_API_REQUEST,
    otel::EV_TOOL_DECISION,
    otel::M_COST,
    otel::M_TOKEN,
    otel::M_DECISION,
    otel::M_LINES,
    otel::M_COMMIT,
    otel::M_PR,
    otel::M_SESSION,
    otel::AGENTS_VIEW,
    "accept",
    "reject",
    "added",
    "removed",
    "input",
    "output",
    "cacheRead",
    "cacheCreation",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookEdit",
    crate::schema::UNKNOWN_MODEL,
];

/// A string interner. Id 0 is the empty string and stands for "absent".
#[derive(Debug, Clone)]
pub struct Dict {
    strings: Vec<String>,
    map: HashMap<String, u32>,
}

impl Default for Dict {
    fn default() -> Self {
        let mut d = Dict {
            strings: Vec::new(),
            map: HashMap::default(),
        };
        for s in SEEDED {
            d.intern(s);
        }
        d
    }
}

impl Dict {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_owned());
        self.map.insert(s.to_owned(), id);
        id
    }
    pub fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }
    pub fn resolve(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }
    pub fn len(&self) -> usize {
        self.strings.len()
    }
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
    pub fn strings(&self) -> &[String] {
        &self.strings
    }
}

/// Column buffers of decoded records. String columns hold dictionary ids (0 = absent).
#[derive(Debug, Default, Clone)]
pub struct Records {
    pub kind: Vec<u8>,
    /// Event short name (`api_request`) or full metric name (`claude_code.cost.usage`).
    pub name: Vec<u32>,
    pub time_ns: Vec<i64>,
    /// Day of the record in the run's time zone, days since 1970-01-01.
    pub date: Vec<i32>,
    pub session: Vec<u32>,
    pub email: Vec<u32>,
    pub api_key: Vec<u32>,
    pub account: Vec<u32>,
    pub user_id: Vec<u32>,
    /// Identity of the record for deduplication (contract 3.3), beside kind, name, session, time.
    pub dkey: Vec<u64>,
    /// Metric series: hash of resource and point attributes (0 for events).
    pub series: Vec<u64>,
    pub start_ns: Vec<i64>,
    pub temporality: Vec<u8>,
    pub value: Vec<f64>,
    pub model: Vec<u32>,
    pub cost: Vec<Option<f64>>,
    pub input_tokens: Vec<Option<i64>>,
    pub output_tokens: Vec<Option<i64>>,
    pub cache_read_tokens: Vec<Option<i64>>,
    pub cache_creation_tokens: Vec<Option<i64>>,
    pub tool: Vec<u32>,
    pub decision: Vec<u32>,
    pub typ: Vec<u32>,
    pub start_type: Vec<u32>,
    /// Per record, for each tag of the decode context: its record value, then its resource
    /// value (0 = absent).
    pub tags: Vec<u32>,
    /// Tags per record (the decode context's).
    pub tag_count: usize,
}

impl Records {
    /// Record `i`'s tag values: `[record, resource]` per tag.
    pub fn tags_of(&self, i: usize) -> &[u32] {
        let n = self.tag_count * 2;
        &self.tags[i * n..(i + 1) * n]
    }
    pub fn len(&self) -> usize {
        self.kind.len()
    }
    pub fn is_empty(&self) -> bool {
        self.kind.is_empty()
    }
}

/// The identities of the records kept so far (contract 3.3: kind, name, session, time and the
/// record's own key), as 128-bit hashes: two independent 64-bit hashes, so that two different
/// records never meet by accident in practice (about 10^-20 for a billion records).
/// One set per day of the records: a record's day follows from its time, so duplicates always
/// meet in the same set, and each set grows (and is rehashed) alone, not a single set holding
/// every record.
#[derive(Default)]
pub struct Seen(std::collections::HashMap<i32, HashSet128, ahash::RandomState>);
type HashSet128 = std::collections::HashSet<u128, ahash::RandomState>;

impl Seen {
    pub fn len(&self) -> usize {
        self.0.values().map(|s| s.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn capacity(&self) -> usize {
        self.0.values().map(|s| s.capacity()).sum()
    }
    /// Records a key; false if it was seen before.
    pub fn insert(
        &mut self,
        date: i32,
        kind: u8,
        name: u32,
        session: u32,
        time_ns: i64,
        dkey: u64,
    ) -> bool {
        let half = |seed: u64| {
            ahash::RandomState::with_seeds(seed, !seed, seed.rotate_left(17), 0x9e37_79b9)
                .hash_one((kind, name, session, time_ns, dkey)) as u128
        };
        self.0
            .entry(date)
            .or_default()
            .insert(half(0x5851_f42d_4c95_7f2d) << 64 | half(0x1405_7b7e_f767_814f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_match_constants() {
        let d = Dict::default();
        assert_eq!(d.get("api_request"), Some(sym::API_REQUEST));
        assert_eq!(d.get("claude_code.session.count"), Some(sym::M_SESSION));
        assert_eq!(d.get("NotebookEdit"), Some(sym::NOTEBOOK_EDIT));
        assert_eq!(d.get("unknown"), Some(sym::UNKNOWN_MODEL));
        for (i, t) in crate::schema::EDIT_TOOLS.iter().enumerate() {
            assert_eq!(d.get(t), Some(sym::EDIT_TOOLS[i]));
        }
    }

    #[test]
    fn seen_keys_differ_by_every_part() {
        let mut seen = Seen::default();
        assert!(seen.insert(7, EVENT, 1, 2, 3, 4));
        assert!(!seen.insert(7, EVENT, 1, 2, 3, 4));
        for (k, n, s, t, d) in [
            (METRIC, 1, 2, 3, 4),
            (EVENT, 9, 2, 3, 4),
            (EVENT, 1, 9, 3, 4),
            (EVENT, 1, 2, 9, 4),
            (EVENT, 1, 2, 3, 9),
        ] {
            assert!(seen.insert(7, k, n, s, t, d), "{k} {n} {s} {t} {d}");
        }
        assert_eq!(seen.len(), 6);
    }
}
