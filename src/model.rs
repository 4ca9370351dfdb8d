//! The normalised record model: one row per Claude Code log record or metric point, in columns,
//! with repeated strings interned as integer ids.

use std::collections::HashMap;

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
            map: HashMap::new(),
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
}

impl Records {
    pub fn len(&self) -> usize {
        self.kind.len()
    }
    pub fn is_empty(&self) -> bool {
        self.kind.is_empty()
    }

    /// Appends `other`, whose string ids come from `from`, re-mapping them into `into`.
    pub fn append_remapped(&mut self, other: &Records, from: &Dict, into: &mut Dict) {
        let remap: Vec<u32> = from.strings().iter().map(|s| into.intern(s)).collect();
        let m =
            |ids: &[u32], out: &mut Vec<u32>| out.extend(ids.iter().map(|&i| remap[i as usize]));
        self.kind.extend_from_slice(&other.kind);
        m(&other.name, &mut self.name);
        self.time_ns.extend_from_slice(&other.time_ns);
        self.date.extend_from_slice(&other.date);
        m(&other.session, &mut self.session);
        m(&other.email, &mut self.email);
        m(&other.api_key, &mut self.api_key);
        m(&other.account, &mut self.account);
        m(&other.user_id, &mut self.user_id);
        self.dkey.extend_from_slice(&other.dkey);
        self.series.extend_from_slice(&other.series);
        self.start_ns.extend_from_slice(&other.start_ns);
        self.temporality.extend_from_slice(&other.temporality);
        self.value.extend_from_slice(&other.value);
        m(&other.model, &mut self.model);
        self.cost.extend_from_slice(&other.cost);
        self.input_tokens.extend_from_slice(&other.input_tokens);
        self.output_tokens.extend_from_slice(&other.output_tokens);
        self.cache_read_tokens
            .extend_from_slice(&other.cache_read_tokens);
        self.cache_creation_tokens
            .extend_from_slice(&other.cache_creation_tokens);
        m(&other.tool, &mut self.tool);
        m(&other.decision, &mut self.decision);
        m(&other.typ, &mut self.typ);
        m(&other.start_type, &mut self.start_type);
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
    fn append_remaps_ids() {
        let mut local = Dict::default();
        let mut r = Records::default();
        let s = local.intern("sess-b");
        r.kind.push(EVENT);
        r.name.push(sym::API_REQUEST);
        r.session.push(s);
        for v in [
            &mut r.email,
            &mut r.api_key,
            &mut r.account,
            &mut r.user_id,
            &mut r.model,
            &mut r.tool,
            &mut r.decision,
            &mut r.typ,
            &mut r.start_type,
        ] {
            v.push(0);
        }
        let mut global = Dict::default();
        global.intern("sess-a");
        let mut all = Records::default();
        all.append_remapped(&r, &local, &mut global);
        assert_eq!(global.resolve(all.session[0]), "sess-b");
        assert_ne!(all.session[0], s);
    }
}
