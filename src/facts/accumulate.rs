//! Records → daily facts: deduplication (3.3), metric increments (3.4), identity per session
//! (3.5, with [`super::identity`]) and the events-before-metrics rule per (session, day) (3.6).
//! Records are folded into partial sums as they arrive; `finish` applies the rules that need a
//! whole session or series and returns the fact frames.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;

mod rules;

use super::identity::{candidate, Candidate, CandidateRef, RAW};
use super::{date_column, days_since_epoch, fcol, sum2, to_pico, FactSet, Facts, Member};
use crate::config::roster::Roster;
use crate::decode::model::{sym, Dict, Records, Seen, CUMULATIVE, EVENT, METRIC};
use crate::decode::otlp::Limits;
use crate::error::Result;
use crate::schema::member_type;

type Map<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
type Set<K> = std::collections::HashSet<K, ahash::RandomState>;

/// Indexes of the measures of a fact row, in the order of `fcol::MEASURES`.
mod out {
    pub const REQUESTS: usize = 0;
    pub const SPEND: usize = 1;
    /// Input, output, cache read, cache creation: `SPEND + 1 ..= SPEND + 4`.
    pub const ACCEPTED: usize = 6;
    pub const REJECTED: usize = 7;
    pub const LINES_ACCEPTED: usize = 8;
    pub const LINES_REMOVED: usize = 9;
    pub const COMMITS: usize = 10;
    pub const PULL_REQUESTS: usize = 11;
    pub const RECORDS: usize = 12;
}
type Measures = [i64; 13];

/// Partial sums per (date, session, model): `api_request` events and the `cost.usage` and
/// `token.usage` points that count only where the group has no such event (3.6), apart.
mod by_model {
    pub const REQUESTS: u8 = 0;
    /// Spend, then the four token kinds, from events.
    pub const EV_SPEND: u8 = 1;
    /// Spend, then the four token kinds, from metric points.
    pub const MET_SPEND: u8 = 6;
    pub const EV_RECORDS: u8 = 11;
    pub const MET_RECORDS: u8 = 12;
    pub const N: usize = 13;
}
/// Partial sums per (date, session, edit tool): decision events and decision points, apart.
mod by_tool {
    pub const EV_ACCEPTED: u8 = 0;
    pub const EV_REJECTED: u8 = 1;
    pub const MET_ACCEPTED: u8 = 2;
    pub const MET_REJECTED: u8 = 3;
    pub const EV_RECORDS: u8 = 4;
    pub const MET_RECORDS: u8 = 5;
    pub const N: usize = 6;
}
/// Partial sums per (date, session) of every other record.
mod plain {
    pub const LINES_ACCEPTED: u8 = 0;
    pub const LINES_REMOVED: u8 = 1;
    pub const COMMITS: u8 = 2;
    pub const PULL_REQUESTS: u8 = 3;
    pub const RECORDS: u8 = 4;
    pub const N: usize = 5;
}

/// A metric increment as the measure it feeds: spend in whole 1e-12 USD, rounded in scalar code
/// (the same bits on every run), everything else rounded to a whole number per record, so that
/// sums are exact and independent of the order they are added in.
fn measure(is_spend: bool, inc: f64) -> i64 {
    if is_spend {
        to_pico(inc)
    } else {
        (inc + 0.5) as i64
    }
}

/// Whether a tool id is one of the code-editing tools.
fn edit_tool(t: u32) -> bool {
    sym::EDIT_TOOLS.contains(&t)
}

/// A request's model, `unknown` where it is missing (3.6).
fn or_unknown(m: u32) -> u32 {
    if m == sym::NONE {
        sym::UNKNOWN_MODEL
    } else {
        m
    }
}

/// `own` of a record with a session: its member is the session's, known at the end.
const BY_SESSION: u32 = u32::MAX;

/// The group of a record for the per-(session, day) rules: records without a session form one
/// group per member and day (3.7), so their own member (`own`) is part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Group {
    date: i32,
    session: u32,
    own: u32,
}

/// Partial rows of one shape, `N` measures each, found by key.
struct Table<K, const N: usize> {
    index: Map<K, u32>,
    rows: Vec<(K, [i64; N])>,
}

impl<K: Copy + Eq + std::hash::Hash, const N: usize> Table<K, N> {
    fn new() -> Self {
        Table {
            index: Map::default(),
            rows: Vec::new(),
        }
    }
    fn row(&mut self, key: K) -> u32 {
        let rows = &mut self.rows;
        *self.index.entry(key).or_insert_with(|| {
            rows.push((key, [0; N]));
            (rows.len() - 1) as u32
        })
    }
    /// Adds `v` to one measure of a row; a count of records (adding 1) cannot reach 2^63.
    fn add(&mut self, row: u32, slot: u8, v: i64) {
        let a = &mut self.rows[row as usize].1[slot as usize];
        *a += v;
    }
    /// Adds each `(slot, value)` to a row, or nothing (false) when any sum would overflow.
    fn try_add(&mut self, row: u32, adds: &[(u8, i64)]) -> bool {
        let m = &mut self.rows[row as usize].1;
        if adds
            .iter()
            .any(|&(slot, v)| m[slot as usize].checked_add(v).is_none())
        {
            return false;
        }
        for &(slot, v) in adds {
            m[slot as usize] += v;
        }
        true
    }
}

/// Which partial table a metric series feeds, and which measure of it.
#[derive(Clone, Copy)]
enum Feed {
    Model(u8),
    Tool(u8),
    Plain(u8),
}

/// A cumulative metric point, kept until every point of its series has been read (3.4).
struct CumulativePoint {
    series: u32,
    /// The partial row it feeds, or `u32::MAX` outside the dates (it is still a base).
    row: u32,
    time_ns: i64,
    value: f64,
}

/// What a (session, day)'s records say beside their numbers: the smallest organisation id and
/// terminal type (5.6), and each dimension's best candidate so far (5.5.1), as run ids.
#[derive(Debug, Clone, Default)]
struct GroupTags {
    org: u32,
    term: u32,
    /// Per dimension: (rank, value id); value `sym::NONE` while none is found.
    dims: Vec<(u8, u32)>,
}

/// Folds decoded records into partial sums per (date, session, model or tool) as they arrive,
/// so that memory grows with sessions and days, not with records. Only what needs a whole
/// session or series waits for the end: a session's best identity candidate, its agents_view
/// flag and the cumulative metric points. `finish` applies the per-session and
/// per-(session, day) rules.
pub struct Accumulator {
    pub(super) dict: Dict,
    seen: Seen,
    range: Option<(i32, i32)>,
    roster: Roster,
    /// The roster's members, then members from raw identities (sessionless records and, at
    /// the end, each session's choice): only chosen identities become members.
    pub(super) members: Vec<Member>,
    /// Member index of a raw identity, per kind (`user`, `api_key`, `install`, none).
    raw_members: [Map<Box<str>, u32>; 4],
    /// 3.5: each session's best candidate so far. Identity strings are kept here, per session,
    /// not in the dictionary: a different `user.id` on every record costs nothing.
    best: Map<u32, Candidate>,
    agents: Set<u32>,
    /// Dimension attribute keys of each dimension (indices into the records' tags).
    dim_keys: Vec<Vec<usize>>,
    dim_names: Vec<String>,
    /// 5.5.1 and 5.6 per (session, day), for groups whose records carry any tag.
    tagged: Map<Group, GroupTags>,
    models: Table<(Group, u32), { by_model::N }>,
    tools: Table<(Group, u32), { by_tool::N }>,
    plain: Table<Group, { plain::N }>,
    /// Cumulative series by (name, attributes, start time), and what each feeds.
    series: Map<(u32, u64, i64), u32>,
    series_feed: Vec<Feed>,
    cumulative: Vec<CumulativePoint>,
    kept: u64,
    duplicates: u64,
    outside: u64,
    /// Event dates recomputed beside `range` (healed late dates), sorted.
    extra: Vec<i32>,
    /// Cumulative points outside the dates: the last of each (series, date), as (time, value).
    outside_last: Map<(u32, i32), (i64, f64)>,
    limits: Limits,
    /// Records left out as implausible: a cumulative increment above its bound, or a value that
    /// would overflow its sum.
    implausible: u64,
}

impl Accumulator {
    pub fn new(roster: &Roster, range: Option<(NaiveDate, NaiveDate)>) -> Self {
        let members = roster
            .members
            .iter()
            .map(|m| Member {
                name: m.member.clone(),
                member_type: m.member_type.clone(),
                role: Some(m.role.clone()),
            })
            .collect();
        Accumulator {
            dict: Dict::default(),
            seen: Seen::default(),
            range: range.map(|(a, b)| (days_since_epoch(a), days_since_epoch(b))),
            roster: roster.clone(),
            members,
            raw_members: Default::default(),
            best: Map::default(),
            agents: Set::default(),
            dim_keys: Vec::new(),
            dim_names: Vec::new(),
            tagged: Map::default(),
            models: Table::new(),
            tools: Table::new(),
            plain: Table::new(),
            series: Map::default(),
            series_feed: Vec::new(),
            cumulative: Vec::new(),
            kept: 0,
            duplicates: 0,
            outside: 0,
            extra: Vec::new(),
            outside_last: Map::default(),
            limits: Limits::default(),
            implausible: 0,
        }
    }

    /// Also recompute these dates (outside the range: healed late dates).
    pub fn with_extra_dates(mut self, dates: &[NaiveDate]) -> Self {
        self.extra = dates.iter().map(|d| days_since_epoch(*d)).collect();
        self.extra.sort_unstable();
        self
    }

    /// Dimension values from these attribute keys (5.5.1; the records' tags must be those of
    /// [`crate::config::dimensions::Dimensions::keys`]).
    pub fn with_dimensions(mut self, dims: &crate::config::dimensions::Dimensions) -> Self {
        self.dim_keys = dims.key_of.clone();
        self.dim_names = dims.dims.iter().map(|d| d.name.clone()).collect();
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Records kept so far (after deduplication).
    pub fn kept(&self) -> u64 {
        self.kept
    }
    /// Records left out as duplicates so far (3.3).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The member index of a candidate, creating the member of a raw identity on first use.
    fn member_of(&mut self, c: CandidateRef) -> u32 {
        if c.prio < RAW {
            return c.at as u32;
        }
        let kind = (c.prio - RAW) as usize;
        if let Some(&m) = self.raw_members[kind].get(c.name) {
            return m;
        }
        let t = [
            member_type::USER,
            member_type::API_KEY,
            member_type::INSTALL,
            member_type::UNATTRIBUTED,
        ][kind];
        self.members.push(Member {
            name: c.name.to_string(),
            member_type: t.to_string(),
            role: None,
        });
        let m = (self.members.len() - 1) as u32;
        self.raw_members[kind].insert(c.name.into(), m);
        m
    }

    /// The run's dictionary id of each string of `from` that the facts keep (names, sessions,
    /// models, tools and the like); identity strings are left out (`u32::MAX`): they are
    /// compared per session, and only the chosen ones become members.
    fn remap(&mut self, rec: &Records, from: &Dict) -> Vec<u32> {
        let mut used = vec![false; from.len()];
        used[sym::NONE as usize] = true;
        for column in [
            &rec.name,
            &rec.session,
            &rec.model,
            &rec.tool,
            &rec.typ,
            &rec.decision,
            &rec.start_type,
            &rec.tags,
        ] {
            for &id in column {
                used[id as usize] = true;
            }
        }
        from.strings()
            .iter()
            .zip(used)
            .map(|(s, u)| if u { self.dict.intern(s) } else { u32::MAX })
            .collect()
    }

    /// Adds the records of one object or batch (string ids from `from`), in order, leaving out
    /// those already seen (3.3: the first one is kept).
    pub fn add(&mut self, rec: &Records, from: &Dict) {
        let remap = self.remap(rec, from);
        // Roster member of each string of the batch (identities are looked up, not interned).
        let roster_of: Vec<Option<u32>> = from
            .strings()
            .iter()
            .enumerate()
            .map(|(id, s)| {
                (id != sym::NONE as usize)
                    .then(|| self.roster.lookup(s).map(|m| m as u32))
                    .flatten()
            })
            .collect();
        for i in 0..rec.len() {
            let Some((group, in_range)) = self.admit(rec, i, from, &remap, &roster_of) else {
                continue;
            };
            if in_range && rec.tag_count > 0 {
                self.tag(group, rec.tags_of(i), &remap);
            }
            match rec.kind[i] {
                EVENT if in_range => self.add_event(rec, i, group, &remap),
                METRIC => self.add_metric(rec, i, group, in_range, &remap),
                _ => {}
            }
        }
    }

    /// Record `i`'s first step: deduplicated (in the dates), its identity candidate offered to
    /// its session, and its group; `None` when nothing more of it counts. Records outside the
    /// dates keep no state of their own (no dedup key): they only help resolve their session's
    /// member, and a cumulative point is a base.
    fn admit(
        &mut self,
        rec: &Records,
        i: usize,
        from: &Dict,
        remap: &[u32],
        roster_of: &[Option<u32>],
    ) -> Option<(Group, bool)> {
        let (kind, time_ns) = (rec.kind[i], rec.time_ns[i]);
        let name = remap[rec.name[i] as usize];
        let session = remap[rec.session[i] as usize];
        let date = rec.date[i];
        let in_range = self.range.is_none_or(|(lo, hi)| lo <= date && date <= hi)
            || self.extra.binary_search(&date).is_ok();
        if in_range {
            if !self
                .seen
                .insert(date, kind, name, session, time_ns, rec.dkey[i])
            {
                self.duplicates += 1;
                return None;
            }
            self.kept += 1;
        }
        let cand = candidate(
            [rec.email[i], rec.api_key[i], rec.account[i], rec.user_id[i]],
            time_ns,
            from,
            roster_of,
        );
        if session != sym::NONE {
            match self.best.get_mut(&session) {
                Some(b) if b.as_ref() <= cand => {}
                Some(b) => *b = cand.to_owned(),
                None => {
                    self.best.insert(session, cand.to_owned());
                }
            }
            if name == sym::M_SESSION && remap[rec.start_type[i] as usize] == sym::AGENTS_VIEW {
                self.agents.insert(session);
            }
        }
        if !in_range {
            self.outside += 1;
            if !(kind == METRIC && rec.temporality[i] == CUMULATIVE) {
                return None;
            }
        }
        let own = if session == sym::NONE {
            self.member_of(cand)
        } else {
            BY_SESSION
        };
        Some((Group { date, session, own }, in_range))
    }

    /// An event of the dates: a request's spend and tokens under its model, an edit tool's
    /// decision, or a record of activity only.
    fn add_event(&mut self, rec: &Records, i: usize, group: Group, remap: &[u32]) {
        let name = remap[rec.name[i] as usize];
        let tool = remap[rec.tool[i] as usize];
        if name == sym::API_REQUEST {
            let r = self
                .models
                .row((group, or_unknown(remap[rec.model[i] as usize])));
            let tokens = [
                rec.input_tokens[i],
                rec.output_tokens[i],
                rec.cache_read_tokens[i],
                rec.cache_creation_tokens[i],
            ];
            let adds = [
                (by_model::REQUESTS, 1),
                (by_model::EV_SPEND, to_pico(rec.cost[i].unwrap_or(0.0))),
                (by_model::EV_SPEND + 1, tokens[0].unwrap_or(0)),
                (by_model::EV_SPEND + 2, tokens[1].unwrap_or(0)),
                (by_model::EV_SPEND + 3, tokens[2].unwrap_or(0)),
                (by_model::EV_SPEND + 4, tokens[3].unwrap_or(0)),
                (by_model::EV_RECORDS, 1),
            ];
            if !self.models.try_add(r, &adds) {
                self.implausible += 1;
            }
        } else if name == sym::TOOL_DECISION && edit_tool(tool) {
            let r = self.tools.row((group, tool));
            match remap[rec.decision[i] as usize] {
                sym::ACCEPT => self.tools.add(r, by_tool::EV_ACCEPTED, 1),
                sym::REJECT => self.tools.add(r, by_tool::EV_REJECTED, 1),
                _ => {}
            }
            self.tools.add(r, by_tool::EV_RECORDS, 1);
        } else {
            let r = self.plain.row(group);
            self.plain.add(r, plain::RECORDS, 1);
        }
    }

    /// 3.6: what a metric point feeds (a measure of a model, tool or plain row), if anything.
    fn feed_of(rec: &Records, i: usize, remap: &[u32]) -> Option<Feed> {
        let (typ, tool) = (remap[rec.typ[i] as usize], remap[rec.tool[i] as usize]);
        match remap[rec.name[i] as usize] {
            sym::M_COST => Some(Feed::Model(by_model::MET_SPEND)),
            sym::M_TOKEN => Some(Feed::Model(match typ {
                sym::INPUT => by_model::MET_SPEND + 1,
                sym::OUTPUT => by_model::MET_SPEND + 2,
                sym::CACHE_READ => by_model::MET_SPEND + 3,
                sym::CACHE_CREATION => by_model::MET_SPEND + 4,
                _ => u8::MAX,
            })),
            sym::M_DECISION if edit_tool(tool) => {
                Some(Feed::Tool(match remap[rec.decision[i] as usize] {
                    sym::ACCEPT => by_tool::MET_ACCEPTED,
                    sym::REJECT => by_tool::MET_REJECTED,
                    _ => u8::MAX,
                }))
            }
            sym::M_LINES => Some(Feed::Plain(match typ {
                sym::ADDED => plain::LINES_ACCEPTED,
                sym::REMOVED => plain::LINES_REMOVED,
                _ => u8::MAX,
            })),
            sym::M_COMMIT => Some(Feed::Plain(plain::COMMITS)),
            sym::M_PR => Some(Feed::Plain(plain::PULL_REQUESTS)),
            _ => None,
        }
    }

    /// A metric point: counted on its row (in the dates), then its increment added (delta) or
    /// the point kept for its series (cumulative; outside the dates only as a base).
    fn add_metric(&mut self, rec: &Records, i: usize, group: Group, in_range: bool, remap: &[u32]) {
        let feed = Self::feed_of(rec, i, remap);
        let row = if !in_range {
            u32::MAX
        } else {
            match feed {
                Some(Feed::Model(_)) => {
                    let model = or_unknown(remap[rec.model[i] as usize]);
                    let r = self.models.row((group, model));
                    self.models.add(r, by_model::MET_RECORDS, 1);
                    r
                }
                Some(Feed::Tool(_)) => {
                    let r = self.tools.row((group, remap[rec.tool[i] as usize]));
                    self.tools.add(r, by_tool::MET_RECORDS, 1);
                    r
                }
                Some(Feed::Plain(_)) | None => {
                    let r = self.plain.row(group);
                    self.plain.add(r, plain::RECORDS, 1);
                    r
                }
            }
        };
        let Some(feed) = feed.filter(|f| {
            !matches!(
                f,
                Feed::Model(u8::MAX) | Feed::Tool(u8::MAX) | Feed::Plain(u8::MAX)
            )
        }) else {
            return;
        };
        if rec.temporality[i] == CUMULATIVE {
            self.keep_cumulative(rec, i, group.date, row, feed, remap);
        } else if row != u32::MAX && !self.feed(feed, row, rec.value[i]) {
            self.reject_point(feed, row);
        }
    }

    /// A cumulative point: its increment needs the series' previous point, so it is kept, also
    /// outside the dates, where it is the base of the next one.
    fn keep_cumulative(
        &mut self,
        rec: &Records,
        i: usize,
        date: i32,
        row: u32,
        feed: Feed,
        remap: &[u32],
    ) {
        let (name, time_ns) = (remap[rec.name[i] as usize], rec.time_ns[i]);
        let next = self.series_feed.len() as u32;
        let series = *self
            .series
            .entry((name, rec.series[i], rec.start_ns[i]))
            .or_insert(next);
        if series == next {
            self.series_feed.push(feed);
        }
        if row == u32::MAX {
            // Outside the dates a point only serves as the base of the next one: of each
            // date, only the last can be (the last to arrive among equal times).
            let last = self
                .outside_last
                .entry((series, date))
                .or_insert((i64::MIN, 0.0));
            if time_ns >= last.0 {
                *last = (time_ns, rec.value[i]);
            }
        } else {
            self.cumulative.push(CumulativePoint {
                series,
                row,
                time_ns,
                value: rec.value[i],
            });
        }
    }

    /// Folds one record's tags into its group's: the smallest organisation id and terminal type
    /// (by their bytes), and per dimension the smallest (rank, value bytes) (5.5.1).
    fn tag(&mut self, group: Group, tags: &[u32], remap: &[u32]) {
        if tags.iter().all(|&t| t == sym::NONE) {
            return;
        }
        let dict = &self.dict;
        let n = self.dim_keys.len();
        let e = self.tagged.entry(group).or_insert_with(|| GroupTags {
            dims: vec![(u8::MAX, sym::NONE); n],
            ..Default::default()
        });
        let smaller =
            |a: u32, b: u32| a != b && (b == sym::NONE || dict.resolve(a) < dict.resolve(b));
        for (slot, k) in [(&mut e.org, 0), (&mut e.term, 1)] {
            for side in 0..2 {
                let id = remap[tags[k * 2 + side] as usize];
                if id != sym::NONE && smaller(id, *slot) {
                    *slot = id;
                }
            }
        }
        for (cur, keys) in e.dims.iter_mut().zip(&self.dim_keys) {
            if let Some((rank, id)) =
                crate::config::dimensions::candidate(tags, keys, |t| remap[t as usize])
            {
                if cur.1 == sym::NONE
                    || (id != cur.1 && (rank, dict.resolve(id)) < (cur.0, dict.resolve(cur.1)))
                    || rank < cur.0
                {
                    *cur = (rank, id);
                }
            }
        }
    }

    /// Adds a metric increment to its partial row; false (nothing added) when it is above its
    /// bound or its sum would overflow.
    fn feed(&mut self, feed: Feed, row: u32, inc: f64) -> bool {
        let is_spend = matches!(feed, Feed::Model(s) if s == by_model::MET_SPEND);
        let bound = if is_spend {
            self.limits.max_cost_usd
        } else {
            self.limits.max_count
        };
        // NaN is no number: implausible too.
        if inc.is_nan() || inc > bound {
            return false;
        }
        let v = measure(is_spend, inc);
        match feed {
            Feed::Model(s) => self.models.try_add(row, &[(s, v)]),
            Feed::Tool(s) => self.tools.try_add(row, &[(s, v)]),
            Feed::Plain(s) => self.plain.try_add(row, &[(s, v)]),
        }
    }

    /// A metric point counted on its row but not used after all (implausible).
    fn reject_point(&mut self, feed: Feed, row: u32) {
        match feed {
            Feed::Model(_) => self.models.add(row, by_model::MET_RECORDS, -1),
            Feed::Tool(_) => self.tools.add(row, by_tool::MET_RECORDS, -1),
            Feed::Plain(_) => self.plain.add(row, plain::RECORDS, -1),
        }
        self.implausible += 1;
    }
}
