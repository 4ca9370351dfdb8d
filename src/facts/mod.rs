//! Records → daily facts: deduplication (3.3), metric increments (3.4), identity per session (3.5),
//! the events-before-metrics rule per (session, day) (3.6). Records are folded into partial sums
//! as objects are merged, so memory grows with sessions and days, not with records.
//!
//! A fact row is one (date, member, session, model, tool) with its measures; every report is a
//! group-by over facts, so facts stored by earlier runs rebuild the reports without raw input.

pub mod late;
pub mod store;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::decode::model::{sym, Dict, Records, Seen, CUMULATIVE, EVENT, METRIC};
use crate::decode::otlp::Limits;
use crate::error::Result;

use crate::config::roster::Roster;
use crate::schema::{member_type, UNATTRIBUTED_MEMBER};

/// Fact columns (internal).
pub mod fcol {
    pub const DATE: &str = "date";
    pub const MEMBER: &str = "member";
    pub const MEMBER_TYPE: &str = "member_type";
    pub const ROLE: &str = "role";
    pub const SESSION: &str = "session";
    pub const AGENTS: &str = "agents_view";
    pub const MODEL: &str = "model";
    pub const TOOL: &str = "tool";
    pub const REQUESTS: &str = "requests";
    /// Spend in 1e-12 USD: integer sums are exact and independent of summation order.
    pub const SPEND_PICO: &str = "spend_pico_usd";
    pub const INPUT_TOKENS: &str = "input_tokens";
    pub const OUTPUT_TOKENS: &str = "output_tokens";
    pub const CACHE_READ_TOKENS: &str = "cache_read_tokens";
    pub const CACHE_CREATION_TOKENS: &str = "cache_creation_tokens";
    pub const ACCEPTED: &str = "accepted";
    pub const REJECTED: &str = "rejected";
    pub const LINES_ACCEPTED: &str = "lines_accepted";
    pub const LINES_REMOVED: &str = "lines_removed";
    pub const COMMITS: &str = "commits";
    pub const PULL_REQUESTS: &str = "pull_requests";
    /// The smallest `organization.id` and `terminal.type` of a (session, day)'s records.
    pub const ORGANIZATION_ID: &str = "organization_id";
    pub const TERMINAL_TYPE: &str = "terminal_type";
    /// Integer measures, in order.
    pub const MEASURES: [&str; 13] = [
        REQUESTS,
        SPEND_PICO,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        CACHE_READ_TOKENS,
        CACHE_CREATION_TOKENS,
        ACCEPTED,
        REJECTED,
        LINES_ACCEPTED,
        LINES_REMOVED,
        COMMITS,
        PULL_REQUESTS,
        RECORDS,
    ];
    pub const RECORDS: &str = "records";
    /// Measures of the per-model facts.
    pub const MODEL_MEASURES: [&str; 6] = [
        REQUESTS,
        SPEND_PICO,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        CACHE_READ_TOKENS,
        CACHE_CREATION_TOKENS,
    ];
    /// Measures of the per-tool facts.
    pub const TOOL_MEASURES: [&str; 2] = [ACCEPTED, REJECTED];
}

pub const PICO_PER_USD: f64 = 1e12;

/// A resolved member: display identity, type, roster role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    pub name: String,
    pub member_type: String,
    pub role: Option<String>,
}

/// Facts at the three grains the reports need, each row with its date:
/// - `sessions`: one row per (date, member, session) with every measure, records without a
///   session as one row per (date, member); every date with records has rows here;
/// - `models`: per (date, model), the spend measures;
/// - `tools`: per (date, edit tool), the decisions.
///
/// Finer rows (per session and model, say) would only be summed away again: a year of a large
/// organisation's facts stays a few million rows.
#[derive(Clone)]
pub struct FactSet {
    pub sessions: DataFrame,
    pub models: DataFrame,
    pub tools: DataFrame,
}

impl FactSet {
    /// The stored names of the frames, in the order of `from_frames`.
    pub const NAMES: [&'static str; 3] = ["sessions", "models", "tools"];

    /// The frames by their stored names.
    pub fn named(&self) -> [(&'static str, &DataFrame); 3] {
        let [a, b, c] = Self::NAMES;
        [(a, &self.sessions), (b, &self.models), (c, &self.tools)]
    }

    /// Builds a set from frames in the order of `named`.
    pub fn from_frames(mut frames: Vec<DataFrame>) -> FactSet {
        let tools = frames.pop().expect("three frames");
        let models = frames.pop().expect("three frames");
        let sessions = frames.pop().expect("three frames");
        FactSet {
            sessions,
            models,
            tools,
        }
    }

    /// Each date's rows, keyed by date. The frames come sorted by date, so each is cut into
    /// slices in one pass (a filter per date reads every frame once per date: a year-long
    /// backfill's 365 dates times millions of rows). A frame that is not sorted is filtered.
    pub fn by_date(&self) -> Result<BTreeMap<NaiveDate, FactSet>> {
        /// Each date's (first row, rows) when the frame is sorted by date without nulls.
        fn runs(df: &DataFrame) -> Result<Option<BTreeMap<i32, (usize, usize)>>> {
            let mut out: Vec<(i32, usize, usize)> = Vec::new();
            let days = df.column(fcol::DATE)?.cast(&DataType::Int32)?;
            for (i, d) in days.i32()?.iter().enumerate() {
                let Some(d) = d else { return Ok(None) };
                match out.last_mut() {
                    Some((last, _, len)) if *last == d => *len += 1,
                    Some((last, _, _)) if *last > d => return Ok(None),
                    _ => out.push((d, i, 1)),
                }
            }
            Ok(Some(
                out.into_iter().map(|(d, at, n)| (d, (at, n))).collect(),
            ))
        }
        let frames = self.named().map(|(_, df)| df);
        let cuts = frames
            .iter()
            .map(|df| runs(df))
            .collect::<Result<Vec<_>>>()?;
        let mut dates = std::collections::BTreeSet::new();
        for (df, cut) in frames.iter().zip(&cuts) {
            match cut {
                Some(c) => dates.extend(c.keys().map(|&d| date_of_days(d))),
                None => dates.extend(FactSet::dates_of(df)?),
            }
        }
        let mut out = BTreeMap::new();
        for date in dates {
            let day = days_since_epoch(date);
            let mut picked = Vec::with_capacity(3);
            for (df, cut) in frames.iter().zip(&cuts) {
                picked.push(match cut {
                    Some(c) => match c.get(&day) {
                        Some(&(at, n)) => df.slice(at as i64, n),
                        None => df.clear(),
                    },
                    None => (*df)
                        .clone()
                        .lazy()
                        .filter(col(fcol::DATE).eq(lit(date)))
                        .collect()?,
                });
            }
            out.insert(date, FactSet::from_frames(picked));
        }
        Ok(out)
    }

    /// The dates a frame has rows for, in order.
    fn dates_of(df: &DataFrame) -> Result<Vec<NaiveDate>> {
        let d = df.column(fcol::DATE)?.unique()?.sort(Default::default())?;
        Ok(d.as_materialized_series()
            .date()?
            .as_date_iter()
            .flatten()
            .collect())
    }

    /// The same frames without rows: the facts of a date with none.
    pub fn empty(&self) -> FactSet {
        FactSet {
            sessions: self.sessions.clear(),
            models: self.models.clear(),
            tools: self.tools.clear(),
        }
    }

    /// The rows of one date, by filtering (what `by_date` must agree with).
    #[cfg(test)]
    pub fn on(&self, d: NaiveDate) -> Result<FactSet> {
        let pick = |df: &DataFrame| {
            df.clone()
                .lazy()
                .filter(col(fcol::DATE).eq(lit(d)))
                .collect()
        };
        Ok(FactSet {
            sessions: pick(&self.sessions)?,
            models: pick(&self.models)?,
            tools: pick(&self.tools)?,
        })
    }

    /// The dates that have rows, in order.
    pub fn dates(&self) -> Result<Vec<NaiveDate>> {
        FactSet::dates_of(&self.sessions)
    }

    /// The session frame with exactly these dimensions' columns, in the order facts are written:
    /// a date stored before a dimension was configured gets none for it (the roster fallback
    /// then applies), and is reported by returning true.
    pub fn with_dimensions(
        mut self,
        dims: &crate::config::dimensions::Dimensions,
    ) -> Result<(FactSet, bool)> {
        let mut missing = false;
        let mut order: Vec<String> = [
            fcol::DATE,
            fcol::MEMBER,
            fcol::MEMBER_TYPE,
            fcol::ROLE,
            fcol::SESSION,
            fcol::AGENTS,
            fcol::ORGANIZATION_ID,
            fcol::TERMINAL_TYPE,
        ]
        .map(String::from)
        .to_vec();
        for d in &dims.dims {
            let name = crate::config::dimensions::fact_column(&d.name);
            if self.sessions.column(&name).is_err() {
                missing = true;
                let nulls = Column::full_null(
                    name.as_str().into(),
                    self.sessions.height(),
                    &DataType::String,
                );
                self.sessions.with_column(nulls)?;
            }
            order.push(name);
        }
        order.extend(fcol::MEASURES.map(String::from));
        self.sessions = self.sessions.select(order)?;
        Ok((self, missing))
    }

    /// All sets' rows together.
    pub fn concat(sets: Vec<FactSet>) -> Result<FactSet> {
        let mut parts: [Vec<LazyFrame>; 3] = Default::default();
        for s in sets {
            parts[0].push(s.sessions.lazy());
            parts[1].push(s.models.lazy());
            parts[2].push(s.tools.lazy());
        }
        let mut out = Vec::new();
        for p in parts {
            // Chunks appended, not copied: the frames of a year are large.
            let args = UnionArgs {
                rechunk: false,
                ..Default::default()
            };
            out.push(concat(p, args)?.collect()?);
        }
        Ok(FactSet::from_frames(out))
    }
}

/// Facts and the record counts of the transform.
pub struct Facts {
    pub set: FactSet,
    pub records_used: u64,
    pub records_outside_range: u64,
    /// Records left out as implausible after decoding (counted as rejected).
    pub records_implausible: u64,
}

/// `a + b`, or an error: sums of plausible values never pass 2^63, so one that would is refused
/// rather than wrapped.
fn sum2(a: i64, b: i64) -> Result<i64> {
    a.checked_add(b).ok_or_else(|| {
        crate::Error::Other(
            "a session's sums pass what a 64-bit integer holds: implausible input".into(),
        )
    })
}

pub fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// A Date column from day counts since 1970-01-01 (`i32` or `Option<i32>`).
pub fn date_column<T>(name: &str, days: Vec<T>) -> PolarsResult<Column>
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Column::new(name.into(), days).cast(&DataType::Date)
}

/// The date of a day count since 1970-01-01 (the inverse of `days_since_epoch`).
pub fn date_of_days(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163).expect("a date within range")
}

fn to_pico(usd: f64) -> i64 {
    (usd * PICO_PER_USD).round() as i64
}

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

/// Priority of the first raw identity kind (`user.email`); roster hits rank 0..=3 before it.
const RAW: u8 = 4;

/// 3.5 step 2 for one record. Candidates order by priority (roster alias by the rank of the
/// attribute, then e-mail, API key name, install id, nothing); between two of one priority, a
/// roster hit by the roster's order, a raw value by its earliest record and then the smaller
/// value. That order does not depend on the order objects are read in, or on which window
/// reads them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    prio: u8,
    /// The roster index (roster hits) or the record's time (raw values).
    at: i64,
    name: Box<str>,
}

/// A candidate borrowing its identity from a batch's dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CandidateRef<'a> {
    prio: u8,
    at: i64,
    name: &'a str,
}

impl Candidate {
    fn as_ref(&self) -> CandidateRef<'_> {
        CandidateRef {
            prio: self.prio,
            at: self.at,
            name: &self.name,
        }
    }
}

impl CandidateRef<'_> {
    fn to_owned(self) -> Candidate {
        Candidate {
            prio: self.prio,
            at: self.at,
            name: self.name.into(),
        }
    }
}

/// The candidate of one record from its four identity values (`user.email`, `api_key.name`,
/// `user.account_uuid`, `user.id`, as ids of `from`).
fn candidate<'a>(
    ids: [u32; 4],
    time_ns: i64,
    from: &'a Dict,
    roster_of: &[Option<u32>],
) -> CandidateRef<'a> {
    if let Some((p, m)) = ids
        .iter()
        .enumerate()
        .find_map(|(p, &id)| roster_of[id as usize].map(|m| (p as u8, m)))
    {
        return CandidateRef {
            prio: p,
            at: m as i64,
            name: "",
        };
    }
    let (kind, name) = if ids[0] != sym::NONE {
        (0, from.resolve(ids[0]))
    } else if ids[1] != sym::NONE {
        (1, from.resolve(ids[1]))
    } else if ids[3] != sym::NONE {
        (2, from.resolve(ids[3]))
    } else {
        (3, UNATTRIBUTED_MEMBER)
    };
    CandidateRef {
        prio: RAW + kind,
        at: if kind == 3 { 0 } else { time_ns },
        name,
    }
}

/// Folds decoded records into partial sums per (date, session, model or tool) as they arrive,
/// so that memory grows with sessions and days, not with records. Only what needs a whole
/// session or series waits for the end: a session's best identity candidate, its agents_view
/// flag and the cumulative metric points. `finish` applies the per-session and
/// per-(session, day) rules.
pub struct Accumulator {
    dict: Dict,
    seen: Seen,
    range: Option<(i32, i32)>,
    roster: Roster,
    /// The roster's members, then members from raw identities (sessionless records and, at
    /// the end, each session's choice): only chosen identities become members.
    members: Vec<Member>,
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
    #[allow(clippy::needless_range_loop)] // one index walks many parallel columns
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
        let edit_tool = |t: u32| sym::EDIT_TOOLS.contains(&t);
        let or_unknown = |m: u32| {
            if m == sym::NONE {
                sym::UNKNOWN_MODEL
            } else {
                m
            }
        };
        for i in 0..rec.len() {
            let (kind, time_ns) = (rec.kind[i], rec.time_ns[i]);
            let name = remap[rec.name[i] as usize];
            let session = remap[rec.session[i] as usize];
            let date = rec.date[i];
            let in_range = self.range.is_none_or(|(lo, hi)| lo <= date && date <= hi)
                || self.extra.binary_search(&date).is_ok();
            // Records outside the dates keep no state of their own (no dedup key): they only
            // help resolve their session's member, and a cumulative point is a base.
            if in_range {
                if !self
                    .seen
                    .insert(date, kind, name, session, time_ns, rec.dkey[i])
                {
                    self.duplicates += 1;
                    continue;
                }
                self.kept += 1;
            }
            let cand = candidate(
                [rec.email[i], rec.api_key[i], rec.account[i], rec.user_id[i]],
                time_ns,
                from,
                &roster_of,
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
                    continue;
                }
            }
            let group = Group {
                date,
                session,
                own: if session == sym::NONE {
                    self.member_of(cand)
                } else {
                    BY_SESSION
                },
            };
            if in_range && rec.tag_count > 0 {
                self.tag(group, rec.tags_of(i), &remap);
            }
            let (model, tool) = (remap[rec.model[i] as usize], remap[rec.tool[i] as usize]);
            let (typ, decision) = (remap[rec.typ[i] as usize], remap[rec.decision[i] as usize]);

            if kind == EVENT {
                if !in_range {
                    continue;
                }
                if name == sym::API_REQUEST {
                    let r = self.models.row((group, or_unknown(model)));
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
                    match decision {
                        sym::ACCEPT => self.tools.add(r, by_tool::EV_ACCEPTED, 1),
                        sym::REJECT => self.tools.add(r, by_tool::EV_REJECTED, 1),
                        _ => {}
                    }
                    self.tools.add(r, by_tool::EV_RECORDS, 1);
                } else {
                    let r = self.plain.row(group);
                    self.plain.add(r, plain::RECORDS, 1);
                }
                continue;
            }
            if kind != METRIC {
                continue;
            }
            // 3.6: what a metric point feeds.
            let feed = match name {
                sym::M_COST => Some(Feed::Model(by_model::MET_SPEND)),
                sym::M_TOKEN => Some(Feed::Model(match typ {
                    sym::INPUT => by_model::MET_SPEND + 1,
                    sym::OUTPUT => by_model::MET_SPEND + 2,
                    sym::CACHE_READ => by_model::MET_SPEND + 3,
                    sym::CACHE_CREATION => by_model::MET_SPEND + 4,
                    _ => u8::MAX,
                })),
                sym::M_DECISION if edit_tool(tool) => Some(Feed::Tool(match decision {
                    sym::ACCEPT => by_tool::MET_ACCEPTED,
                    sym::REJECT => by_tool::MET_REJECTED,
                    _ => u8::MAX,
                })),
                sym::M_LINES => Some(Feed::Plain(match typ {
                    sym::ADDED => plain::LINES_ACCEPTED,
                    sym::REMOVED => plain::LINES_REMOVED,
                    _ => u8::MAX,
                })),
                sym::M_COMMIT => Some(Feed::Plain(plain::COMMITS)),
                sym::M_PR => Some(Feed::Plain(plain::PULL_REQUESTS)),
                _ => None,
            };
            let row = if !in_range {
                u32::MAX
            } else {
                match feed {
                    Some(Feed::Model(_)) => {
                        let r = self.models.row((group, or_unknown(model)));
                        self.models.add(r, by_model::MET_RECORDS, 1);
                        r
                    }
                    Some(Feed::Tool(_)) => {
                        let r = self.tools.row((group, tool));
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
                continue;
            };
            if rec.temporality[i] == CUMULATIVE {
                // Its increment needs the series' previous point: kept, also outside the dates,
                // where it is the base of the next one.
                let next = self.series_feed.len() as u32;
                let series = *self
                    .series
                    .entry((name, rec.series[i], rec.start_ns[i]))
                    .or_insert(next);
                if series == next {
                    self.series_feed.push(feed);
                }
                if row == u32::MAX {
                    // Outside the dates a point only serves as the base of the next one: of
                    // each date, only the last can be (the last to arrive among equal times).
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
            } else if row != u32::MAX && !self.feed(feed, row, rec.value[i]) {
                self.reject_point(feed, row);
            }
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

    /// Applies the whole-run rules and returns the facts, sorted by date, member, session,
    /// model and tool.
    pub fn finish(mut self) -> Result<Facts> {
        tracing::debug!(
            "merged: {} records kept, {} dedup keys (capacity {}), {}/{}/{} partial rows by model/tool/other, {} cumulative points in {} series, {} sessions, {} strings",
            self.kept,
            self.seen.len(),
            self.seen.capacity(),
            self.models.rows.len(),
            self.tools.rows.len(),
            self.plain.rows.len(),
            self.cumulative.len(),
            self.series_feed.len(),
            self.best.len(),
            self.dict.len()
        );
        drop(std::mem::take(&mut self.seen));
        drop(std::mem::take(&mut self.series));
        for idx in [&mut self.models.index, &mut self.tools.index] {
            drop(std::mem::take(idx));
        }
        drop(std::mem::take(&mut self.plain.index));

        // 3.4: a cumulative point's increment is its value minus the previous point of its series
        // (name, attributes, start time); the first counts whole, and so does a drop (a reset).
        // The sort is stable: points of equal time keep their order of arrival.
        let mut points = std::mem::take(&mut self.cumulative);
        points.extend(std::mem::take(&mut self.outside_last).into_iter().map(
            |((series, _), (time_ns, value))| CumulativePoint {
                series,
                row: u32::MAX,
                time_ns,
                value,
            },
        ));
        points.sort_by_key(|p| (p.series, p.time_ns));
        let mut prev: Option<(u32, f64)> = None;
        for p in &points {
            let inc = match prev {
                Some((s, v0)) if s == p.series && p.value >= v0 => p.value - v0,
                _ => p.value,
            };
            prev = Some((p.series, p.value));
            let feed = self.series_feed[p.series as usize];
            if p.row != u32::MAX && !self.feed(feed, p.row, inc) {
                self.reject_point(feed, p.row);
            }
        }
        drop(points);

        // 3.6: which (session, day) groups have events that take precedence over metrics.
        let mut has_req: Set<Group> = Set::default();
        let mut has_dec: Set<Group> = Set::default();
        for ((g, _), m) in &self.models.rows {
            if m[by_model::EV_RECORDS as usize] > 0 {
                has_req.insert(*g);
            }
        }
        for ((g, _), m) in &self.tools.rows {
            if m[by_tool::EV_RECORDS as usize] > 0 {
                has_dec.insert(*g);
            }
        }
        // Partial rows → fact rows (date, member, session, model, tool): the member of the
        // session; metric points that events override count as records only, under no model or
        // tool.
        let best = std::mem::take(&mut self.best);
        let chosen: Map<u32, u32> = best
            .iter()
            .map(|(s, c)| (*s, self.member_of(c.as_ref())))
            .collect();
        drop(best);
        let member_of = |g: &Group| {
            if g.own == BY_SESSION {
                chosen[&g.session]
            } else {
                g.own
            }
        };
        let tagged: Map<(i32, u32, u32), GroupTags> = std::mem::take(&mut self.tagged)
            .into_iter()
            .map(|(g, t)| ((g.date, member_of(&g), g.session), t))
            .collect();
        let mut sessions: BTreeMap<(i32, u32, u32), Measures> = BTreeMap::new();
        let mut models: BTreeMap<(i32, u32, u32), [i64; 6]> = BTreeMap::new();
        let mut tools: BTreeMap<(i32, u32, u32), [i64; 2]> = BTreeMap::new();
        fn add<const N: usize>(row: &mut [i64; N], m: &[i64]) -> Result<()> {
            for (a, b) in row.iter_mut().zip(m) {
                *a = a.checked_add(*b).ok_or_else(|| {
                    crate::Error::Other(
                        "a session's sums pass what a 64-bit integer holds: implausible input"
                            .into(),
                    )
                })?;
            }
            Ok(())
        }
        // A fact (date, member, session, model, tool) with measures `m`, summed into each grain.
        let mut emit = |g: &Group, model: u32, tool: u32, m: Measures| {
            if m[out::RECORDS] == 0 {
                return Ok(());
            }
            let (date, member) = (g.date, member_of(g));
            add(
                sessions.entry((date, member, g.session)).or_insert([0; 13]),
                &m,
            )?;
            if model != sym::NONE {
                add(
                    models.entry((date, member, model)).or_insert([0; 6]),
                    &m[out::REQUESTS..=out::SPEND + 4],
                )?;
            }
            if tool != sym::NONE {
                add(
                    tools.entry((date, member, tool)).or_insert([0; 2]),
                    &m[out::ACCEPTED..=out::REJECTED],
                )?;
            }
            Ok::<(), crate::Error>(())
        };
        let records_only = |n: i64| std::array::from_fn(|i| if i == out::RECORDS { n } else { 0 });
        for ((g, model), p) in &self.models.rows {
            let use_metrics = !has_req.contains(g);
            let mut m: Measures = [0; 13];
            m[out::REQUESTS] = p[by_model::REQUESTS as usize];
            for k in 0..5 {
                let met = if use_metrics {
                    p[by_model::MET_SPEND as usize + k]
                } else {
                    0
                };
                m[out::SPEND + k] = sum2(p[by_model::EV_SPEND as usize + k], met)?;
            }
            let met_records = p[by_model::MET_RECORDS as usize];
            m[out::RECORDS] =
                p[by_model::EV_RECORDS as usize] + if use_metrics { met_records } else { 0 };
            emit(g, *model, sym::NONE, m)?;
            if !use_metrics {
                emit(g, sym::NONE, sym::NONE, records_only(met_records))?;
            }
        }
        for ((g, tool), p) in &self.tools.rows {
            let use_metrics = !has_dec.contains(g);
            let mut m: Measures = [0; 13];
            let met = |s: u8| if use_metrics { p[s as usize] } else { 0 };
            m[out::ACCEPTED] = sum2(p[by_tool::EV_ACCEPTED as usize], met(by_tool::MET_ACCEPTED))?;
            m[out::REJECTED] = sum2(p[by_tool::EV_REJECTED as usize], met(by_tool::MET_REJECTED))?;
            m[out::RECORDS] = p[by_tool::EV_RECORDS as usize] + met(by_tool::MET_RECORDS);
            emit(g, sym::NONE, *tool, m)?;
            if !use_metrics {
                emit(
                    g,
                    sym::NONE,
                    sym::NONE,
                    records_only(p[by_tool::MET_RECORDS as usize]),
                )?;
            }
        }
        for (g, p) in &self.plain.rows {
            let mut m: Measures = [0; 13];
            m[out::LINES_ACCEPTED] = p[plain::LINES_ACCEPTED as usize];
            m[out::LINES_REMOVED] = p[plain::LINES_REMOVED as usize];
            m[out::COMMITS] = p[plain::COMMITS as usize];
            m[out::PULL_REQUESTS] = p[plain::PULL_REQUESTS as usize];
            m[out::RECORDS] = p[plain::RECORDS as usize];
            emit(g, sym::NONE, sym::NONE, m)?;
        }
        let records_used = sessions.values().map(|m| m[out::RECORDS] as u64).sum();
        let set = self.frames(&sessions, &tagged, &models, &tools)?;
        Ok(Facts {
            set,
            records_used,
            records_outside_range: self.outside,
            records_implausible: self.implausible,
        })
    }

    /// The fact frames with their strings: the stable, run-independent form stored under
    /// `_facts/`.
    fn frames(
        &self,
        sessions: &BTreeMap<(i32, u32, u32), Measures>,
        tagged: &Map<(i32, u32, u32), GroupTags>,
        models: &BTreeMap<(i32, u32, u32), [i64; 6]>,
        tools: &BTreeMap<(i32, u32, u32), [i64; 2]>,
    ) -> Result<FactSet> {
        let text = |id: u32| (id != sym::NONE).then(|| self.dict.resolve(id).to_string());
        let member = |k: &(i32, u32, u32)| &self.members[k.1 as usize];
        let keys: Vec<_> = sessions.keys().collect();
        let mut columns = vec![
            date_column(fcol::DATE, keys.iter().map(|k| k.0).collect())?,
            Column::new(
                fcol::MEMBER.into(),
                keys.iter()
                    .map(|k| member(k).name.clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                fcol::MEMBER_TYPE.into(),
                keys.iter()
                    .map(|k| member(k).member_type.clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                fcol::ROLE.into(),
                keys.iter()
                    .map(|k| member(k).role.clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                fcol::SESSION.into(),
                keys.iter().map(|k| text(k.2)).collect::<Vec<_>>(),
            ),
            Column::new(
                fcol::AGENTS.into(),
                keys.iter()
                    .map(|k| k.2 != sym::NONE && self.agents.contains(&k.2))
                    .collect::<Vec<_>>(),
            ),
        ];
        let tag = |k: &(i32, u32, u32), pick: &dyn Fn(&GroupTags) -> u32| {
            tagged.get(k).and_then(|t| text(pick(t)))
        };
        let tag_column = |name: &str, pick: &dyn Fn(&GroupTags) -> u32| {
            Column::new(
                name.into(),
                keys.iter().map(|k| tag(k, pick)).collect::<Vec<_>>(),
            )
        };
        columns.push(tag_column(fcol::ORGANIZATION_ID, &|t| t.org));
        columns.push(tag_column(fcol::TERMINAL_TYPE, &|t| t.term));
        for (d, name) in self.dim_names.iter().enumerate() {
            columns.push(tag_column(
                &crate::config::dimensions::fact_column(name),
                &|t| t.dims[d].1,
            ));
        }
        columns.extend(measure_columns(&fcol::MEASURES, sessions.values()));
        let sessions = DataFrame::new_infer_height(columns)?;
        let members = &self.members;
        let models = keyed_frame(models, fcol::MODEL, &fcol::MODEL_MEASURES, text, members)?;
        let tools = keyed_frame(tools, fcol::TOOL, &fcol::TOOL_MEASURES, text, members)?;
        // Member indices follow the order sessions were resolved in, which a run does not fix:
        // rows are sorted by their strings, so that the same records give the same files.
        let by = |key: &str| -> Vec<String> {
            [fcol::DATE, fcol::MEMBER, fcol::MEMBER_TYPE, key]
                .map(String::from)
                .to_vec()
        };
        let sort = |df: DataFrame, key: &str| {
            df.sort(
                by(key),
                SortMultipleOptions::default().with_maintain_order(true),
            )
        };
        Ok(FactSet {
            sessions: sort(sessions, fcol::SESSION)?,
            models: sort(models, fcol::MODEL)?,
            tools: sort(tools, fcol::TOOL)?,
        })
    }
}

/// Measure columns, named in order, from rows of sums.
fn measure_columns<'a, const N: usize>(
    names: &[&str; N],
    rows: impl Iterator<Item = &'a [i64; N]> + Clone,
) -> Vec<Column> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Column::new(
                (*n).into(),
                rows.clone().map(|m| m[i]).collect::<Vec<i64>>(),
            )
        })
        .collect()
}

/// Sums per (date, member, id) as a frame: the date, the member and its type, the id's text
/// under `name`, the measures.
fn keyed_frame<const N: usize>(
    rows: &BTreeMap<(i32, u32, u32), [i64; N]>,
    name: &str,
    measures: &[&str; N],
    text: impl Fn(u32) -> Option<String>,
    members: &[Member],
) -> Result<DataFrame> {
    let member = |k: &(i32, u32, u32)| &members[k.1 as usize];
    let mut columns = vec![
        date_column(fcol::DATE, rows.keys().map(|k| k.0).collect())?,
        Column::new(
            fcol::MEMBER.into(),
            rows.keys()
                .map(|k| member(k).name.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            fcol::MEMBER_TYPE.into(),
            rows.keys()
                .map(|k| member(k).member_type.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            name.into(),
            rows.keys().map(|k| text(k.2)).collect::<Vec<_>>(),
        ),
    ];
    columns.extend(measure_columns(measures, rows.values()));
    Ok(DataFrame::new_infer_height(columns)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decode::otlp::{DecodeContext, ObjectDecoder};

    /// 2026-10-08T00:00:00Z in seconds.
    pub const DAY0: i64 = 1_791_417_600;

    fn kv(attrs: &[(&str, &str)]) -> String {
        attrs
            .iter()
            .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A log line with one Claude Code event.
    pub fn event(name: &str, t: i64, attrs: &[(&str, &str)]) -> String {
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{}","body":{{"stringValue":"claude_code.{name}"}},"attributes":[{}]}}]}}]}}]}}"#,
            t * 1_000_000_000,
            kv(attrs)
        )
    }

    /// A metric line with one Sum point.
    pub fn metric(
        name: &str,
        temporality: u8,
        start: i64,
        t: i64,
        value: f64,
        attrs: &[(&str, &str)],
    ) -> String {
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"claude_code.{name}","sum":{{"dataPoints":[{{"attributes":[{}],"startTimeUnixNano":"{}","timeUnixNano":"{}","asDouble":{value}}}],"aggregationTemporality":{temporality}}}}}]}}]}}]}}"#,
            kv(attrs),
            start * 1_000_000_000,
            t * 1_000_000_000
        )
    }

    /// Decodes each object (a list of lines) separately, merges them as a run would, builds
    /// facts and reports.
    pub fn tables(
        objects: &[Vec<String>],
        roster: &str,
        tz: &str,
    ) -> (Facts, u64, Vec<(&'static str, DataFrame)>) {
        let ctx = DecodeContext::new(tz.parse().unwrap(), i64::MAX);
        let roster = if roster.is_empty() {
            Roster::default()
        } else {
            Roster::parse(roster, "test").unwrap()
        };
        let mut acc = Accumulator::new(&roster, None);
        for lines in objects {
            let mut d = ObjectDecoder::new(ctx);
            for (i, l) in lines.iter().enumerate() {
                d.decode_line(i, l).unwrap();
            }
            acc.add(&d.records, &d.dict);
        }
        let duplicates = acc.duplicates();
        let facts = acc.finish().unwrap();
        let reports =
            crate::reports::daily::build(&facts.set, &roster, &Default::default()).unwrap();
        (facts, duplicates, reports)
    }

    #[test]
    fn facts_cut_by_date_equal_a_filter_per_date() {
        let mut lines = Vec::new();
        for day in [0i64, 0, 1, 3, 3, 3] {
            let t = DAY0 + day * 86_400 + lines.len() as i64 * 60;
            let session = format!("s{}", lines.len() % 4);
            let email = format!("u{}@example.com", lines.len() % 3);
            lines.push(event(
                "api_request",
                t,
                &[
                    ("session.id", &session),
                    ("user.email", &email),
                    ("model", if day == 1 { "m-b" } else { "m-a" }),
                    ("cost_usd", "0.5"),
                ],
            ));
            if day != 1 {
                lines.push(event(
                    "tool_decision",
                    t + 1,
                    &[
                        ("session.id", &session),
                        ("user.email", &email),
                        ("tool_name", "Edit"),
                        ("decision", "accept"),
                    ],
                ));
            }
        }
        let (facts, _, _) = tables(&[lines], "", "UTC");
        let set = &facts.set;
        let d = |n: u32| NaiveDate::from_ymd_opt(2026, 10, 8 + n).unwrap();
        let same = |a: &FactSet, b: &FactSet| {
            a.named()
                .iter()
                .zip(b.named())
                .all(|((_, x), (_, y))| x.equals_missing(y))
        };
        let check = |set: &FactSet| {
            let cut = set.by_date().unwrap();
            assert_eq!(cut.keys().copied().collect::<Vec<_>>(), [d(0), d(1), d(3)]);
            for (date, day) in &cut {
                assert!(day.sessions.height() > 0);
                assert!(same(day, &set.on(*date).unwrap()), "{date}");
            }
            // Day 1 has no tool decisions: an empty slice, with the columns.
            assert_eq!(cut[&d(1)].tools.height(), 0);
            assert_eq!(cut[&d(1)].tools.width(), set.tools.width());
        };
        check(set);
        // A frame out of date order is filtered instead, with the same result.
        let mut reversed = set.clone();
        reversed.sessions = reversed.sessions.reverse();
        check(&reversed);
        assert!(same(&set.empty(), &set.on(d(2)).unwrap()));
    }

    pub fn table<'a>(t: &'a [(&'static str, DataFrame)], name: &str) -> &'a DataFrame {
        &t.iter().find(|(n, _)| *n == name).unwrap().1
    }

    pub fn f64s(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
        df.column(c)
            .unwrap()
            .as_materialized_series()
            .f64()
            .unwrap()
            .iter()
            .collect()
    }
    pub fn i64s(df: &DataFrame, c: &str) -> Vec<i64> {
        df.column(c)
            .unwrap()
            .as_materialized_series()
            .i64()
            .unwrap()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    }
    pub fn strs(df: &DataFrame, c: &str) -> Vec<Option<String>> {
        df.column(c)
            .unwrap()
            .as_materialized_series()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.map(String::from))
            .collect()
    }

    fn req(t: i64, session: &str, seq: &str, cost: &str) -> String {
        event(
            "api_request",
            t,
            &[
                ("session.id", session),
                ("user.email", "a@x.com"),
                ("event.sequence", seq),
                ("cost_usd", cost),
                ("model", "m1"),
            ],
        )
    }

    #[test]
    fn a_duplicate_in_two_objects_counts_once() {
        let r = req(DAY0 + 100, "s1", "1", "0.5");
        let (f, dups, t) = tables(
            &[vec![r.clone()], vec![r, req(DAY0 + 200, "s1", "2", "0.25")]],
            "",
            "UTC",
        );
        assert_eq!(dups, 1);
        assert_eq!(f.records_used, 2);
        assert_eq!(
            f64s(table(&t, "daily_spend"), "spend_usd"),
            vec![Some(0.75)]
        );
        assert_eq!(i64s(table(&t, "daily_spend_by_model"), "requests"), vec![2]);
    }

    #[test]
    fn events_without_sequence_are_duplicates_only_when_all_attributes_match() {
        let a = event(
            "api_request",
            DAY0 + 5,
            &[("session.id", "s"), ("cost_usd", "1")],
        );
        let b = event(
            "api_request",
            DAY0 + 5,
            &[("session.id", "s"), ("cost_usd", "2")],
        );
        let (_, dups, t) = tables(&[vec![a.clone(), a, b]], "", "UTC");
        assert_eq!(dups, 1);
        assert_eq!(f64s(table(&t, "daily_spend"), "spend_usd"), vec![Some(3.0)]);
    }

    #[test]
    fn session_metrics_without_email_belong_to_the_member_its_events_name() {
        let lines = vec![
            req(DAY0 + 100, "s1", "1", "0.5"),
            metric(
                "lines_of_code.count",
                1,
                DAY0,
                DAY0 + 120,
                7.0,
                &[
                    ("session.id", "s1"),
                    ("user.id", "inst-1"),
                    ("type", "added"),
                ],
            ),
            // Another session of the same install without any email: resolves to the install.
            metric(
                "lines_of_code.count",
                1,
                DAY0,
                DAY0 + 120,
                3.0,
                &[
                    ("session.id", "s2"),
                    ("user.id", "inst-1"),
                    ("type", "added"),
                ],
            ),
        ];
        let (_, _, t) = tables(&[lines], "", "UTC");
        let md = table(&t, "member_daily");
        assert_eq!(
            strs(md, "member"),
            vec![Some("a@x.com".into()), Some("inst-1".into())]
        );
        assert_eq!(
            strs(md, "member_type"),
            vec![Some("user".into()), Some("install".into())]
        );
        assert_eq!(i64s(md, "lines_accepted"), vec![7, 3]);
        assert_eq!(i64s(table(&t, "daily_activity"), "active_users"), vec![2]);
    }

    #[test]
    fn two_values_of_one_rank_in_a_session_go_to_the_earliest_record_whatever_the_order() {
        let commit = |t: i64, s: &str, k: &str, v: &str| {
            metric(
                "commit.count",
                1,
                DAY0,
                t,
                1.0,
                &[("session.id", s), (k, v)],
            )
        };
        // s1: zed@ at +90 (read first), amy@ at +30; s2: two e-mails at one time: the smaller.
        let a = vec![
            commit(DAY0 + 90, "s1", "user.email", "zed@x.com"),
            commit(DAY0 + 50, "s2", "user.email", "yan@x.com"),
        ];
        let b = vec![
            commit(DAY0 + 30, "s1", "user.email", "amy@x.com"),
            commit(DAY0 + 50, "s2", "user.email", "bob@x.com"),
        ];
        for objects in [[a.clone(), b.clone()], [b, a]] {
            let (_, _, t) = tables(&objects, "", "UTC");
            let md = table(&t, "member_daily");
            assert_eq!(
                strs(md, "member"),
                vec![Some("amy@x.com".into()), Some("bob@x.com".into())]
            );
            assert_eq!(i64s(md, "commits"), vec![2, 2]);
        }
    }

    #[test]
    fn a_different_user_id_on_every_record_makes_one_member_per_session() {
        let lines: Vec<String> = (0..500)
            .map(|i| {
                metric(
                    "commit.count",
                    1,
                    DAY0,
                    DAY0 + 100 + i,
                    1.0,
                    &[("session.id", "s1"), ("user.id", &format!("inst-{i:03}"))],
                )
            })
            .rev()
            .collect();
        let ctx = DecodeContext::new("UTC".parse().unwrap(), i64::MAX);
        let mut acc = Accumulator::new(&Roster::default(), None);
        let mut d = ObjectDecoder::new(ctx);
        for (i, l) in lines.iter().enumerate() {
            d.decode_line(i, l).unwrap();
        }
        acc.add(&d.records, &d.dict);
        // No identity string reaches the run's dictionary or its members before the end.
        assert!(acc.dict.strings().iter().all(|s| !s.starts_with("inst-")));
        assert!(acc.members.is_empty());
        let facts = acc.finish().unwrap();
        let reports =
            crate::reports::daily::build(&facts.set, &Roster::default(), &Default::default())
                .unwrap();
        let md = table(&reports, "member_daily");
        assert_eq!(strs(md, "member"), vec![Some("inst-000".into())]);
        assert_eq!(i64s(md, "commits"), vec![500]);
    }

    #[test]
    fn roster_aliases_win_and_give_type_and_role() {
        let roster = "member,member_type,role,aliases\nalice@x.com,user,billing,acct-9\nbot,api_key,admin,\n";
        let lines = vec![
            // Session s1 shows only the account uuid (an alias) and a raw email of another person.
            metric(
                "commit.count",
                1,
                DAY0,
                DAY0 + 60,
                1.0,
                &[("session.id", "s1"), ("user.account_uuid", "acct-9")],
            ),
            metric(
                "commit.count",
                1,
                DAY0,
                DAY0 + 70,
                1.0,
                &[("session.id", "s1"), ("user.email", "zed@x.com")],
            ),
            // An API key name equal to a roster member.
            metric(
                "commit.count",
                1,
                DAY0,
                DAY0 + 80,
                2.0,
                &[("session.id", "s2"), ("api_key.name", "bot")],
            ),
        ];
        let (_, _, t) = tables(&[lines], roster, "UTC");
        let md = table(&t, "member_daily");
        assert_eq!(
            strs(md, "member"),
            vec![Some("alice@x.com".into()), Some("bot".into())]
        );
        assert_eq!(
            strs(md, "member_type"),
            vec![Some("user".into()), Some("api_key".into())]
        );
        assert_eq!(
            strs(md, "role"),
            vec![Some("billing".into()), Some("admin".into())]
        );
        assert_eq!(i64s(md, "commits"), vec![2, 2]);
        // Roster members appear monthly even without activity; here both have some.
        let mm = table(&t, "member_monthly");
        assert_eq!(mm.height(), 2);
    }

    #[test]
    fn dst_day_in_los_angeles_splits_at_local_midnight() {
        // 2026-03-08 (spring forward). 07:30Z on Mar 8 is Mar 7 23:30 PST; 07:30Z on Mar 9 is
        // Mar 9 00:30 PDT.
        let mar8_0730 = 1_772_955_000;
        let lines = vec![
            req(mar8_0730, "s1", "1", "1"),
            req(mar8_0730 + 86_400, "s1", "2", "2"),
            req(mar8_0730 + 86_400 - 3_600, "s1", "3", "4"), // Mar 9 06:30Z = Mar 8 23:30 PDT
        ];
        let (_, _, t) = tables(&[lines], "", "America/Los_Angeles");
        let ds = table(&t, "daily_spend");
        let dates: Vec<String> = ds
            .column("date")
            .unwrap()
            .cast(&DataType::String)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect();
        assert_eq!(dates, vec!["2026-03-07", "2026-03-08", "2026-03-09"]);
        assert_eq!(f64s(ds, "spend_usd"), vec![Some(1.0), Some(4.0), Some(2.0)]);
    }

    #[test]
    fn cumulative_counters_are_differenced_per_series() {
        let a = [("session.id", "s1"), ("type", "added")];
        let lines = vec![
            metric("lines_of_code.count", 2, DAY0, DAY0 + 60, 10.0, &a),
            metric("lines_of_code.count", 2, DAY0, DAY0 + 120, 25.0, &a),
            metric("lines_of_code.count", 2, DAY0, DAY0 + 180, 25.0, &a),
            // A new process (new start time) starts a new series: counted whole.
            metric("lines_of_code.count", 2, DAY0 + 500, DAY0 + 560, 4.0, &a),
            // Delta points are summed.
            metric(
                "lines_of_code.count",
                1,
                DAY0,
                DAY0 + 60,
                5.0,
                &[("session.id", "s2"), ("type", "removed")],
            ),
            metric(
                "lines_of_code.count",
                1,
                DAY0 + 60,
                DAY0 + 120,
                6.0,
                &[("session.id", "s2"), ("type", "removed")],
            ),
        ];
        let (_, _, t) = tables(&[lines], "", "UTC");
        let dl = table(&t, "daily_lines");
        assert_eq!(i64s(dl, "lines_accepted"), vec![29]);
        assert_eq!(i64s(dl, "lines_removed"), vec![11]);
    }

    #[test]
    fn events_win_over_metrics_per_session_and_day() {
        let cost = |s: &str, t: i64, v: f64| {
            metric(
                "cost.usage",
                1,
                t - 60,
                t,
                v,
                &[("session.id", s), ("model", "m1")],
            )
        };
        let tok = |s: &str, t: i64, v: f64| {
            metric(
                "token.usage",
                1,
                t - 60,
                t,
                v,
                &[("session.id", s), ("model", "m1"), ("type", "input")],
            )
        };
        let lines = vec![
            // s1 day 0: event 0.5 and its metric 0.5 → 0.5, not 1.0.
            req(DAY0 + 100, "s1", "1", "0.5"),
            cost("s1", DAY0 + 160, 0.5),
            tok("s1", DAY0 + 160, 100.0),
            // s1 day 1: the metric of a late request, and no event that day → counts.
            cost("s1", DAY0 + 86_400 + 30, 0.25),
            // s2 day 0: metrics only.
            cost("s2", DAY0 + 300, 2.0),
            tok("s2", DAY0 + 300, 40.0),
        ];
        let (_, _, t) = tables(&[lines], "", "UTC");
        assert_eq!(
            f64s(table(&t, "daily_spend"), "spend_usd"),
            vec![Some(2.5), Some(0.25)]
        );
        let m = table(&t, "daily_spend_by_model");
        assert_eq!(i64s(m, "requests"), vec![1, 0]);
        assert_eq!(i64s(m, "input_tokens"), vec![40, 0]);
    }

    #[test]
    fn decisions_prefer_events_and_accept_rate_has_an_all_row() {
        let dec = |s: &str, t: i64, tool: &str, d: &str| {
            event(
                "tool_decision",
                t,
                &[("session.id", s), ("tool_name", tool), ("decision", d)],
            )
        };
        let dm = |s: &str, tool: &str, d: &str, v: f64| {
            metric(
                "code_edit_tool.decision",
                1,
                DAY0,
                DAY0 + 600,
                v,
                &[("session.id", s), ("tool", tool), ("decision", d)],
            )
        };
        let lines = vec![
            dec("s1", DAY0 + 10, "Edit", "accept"),
            dec("s1", DAY0 + 20, "Edit", "reject"),
            dec("s1", DAY0 + 30, "Read", "accept"), // not an edit tool
            dm("s1", "Edit", "accept", 5.0),        // ignored: s1 has decision events
            dm("s2", "MultiEdit", "accept", 3.0),   // legacy `tool` attribute, metrics only
            // Day 1 has records but no decision.
            metric(
                "commit.count",
                1,
                DAY0,
                DAY0 + 86_400 + 5,
                1.0,
                &[("session.id", "s3")],
            ),
        ];
        let (_, _, t) = tables(&[lines], "", "UTC");
        let r = table(&t, "daily_accept_rate");
        assert_eq!(
            strs(r, "tool"),
            vec![
                Some("Edit".into()),
                Some("MultiEdit".into()),
                Some("all".into()),
                Some("all".into())
            ]
        );
        assert_eq!(i64s(r, "accepted"), vec![1, 3, 4, 0]);
        assert_eq!(i64s(r, "rejected"), vec![1, 0, 1, 0]);
        assert_eq!(
            f64s(r, "accept_rate"),
            vec![Some(0.5), Some(1.0), Some(0.8), None]
        );
    }

    #[test]
    fn agents_view_sessions_and_sessionless_records_are_not_sessions() {
        let lines = vec![
            metric(
                "session.count",
                1,
                DAY0,
                DAY0 + 60,
                1.0,
                &[
                    ("session.id", "agents"),
                    ("user.email", "a@x.com"),
                    ("start_type", "agents_view"),
                ],
            ),
            req(DAY0 + 70, "agents", "1", "0.1"),
            metric(
                "session.count",
                1,
                DAY0,
                DAY0 + 60,
                1.0,
                &[
                    ("session.id", "real"),
                    ("user.email", "b@x.com"),
                    ("start_type", "fresh"),
                ],
            ),
            metric(
                "commit.count",
                1,
                DAY0,
                DAY0 + 60,
                1.0,
                &[("user.id", "inst")],
            ),
            metric("commit.count", 1, DAY0, DAY0 + 60, 1.0, &[]),
        ];
        let (_, _, t) = tables(&[lines], "", "UTC");
        let a = table(&t, "daily_activity");
        assert_eq!(i64s(a, "active_users"), vec![4]);
        assert_eq!(i64s(a, "sessions"), vec![1]);
        let md = table(&t, "member_daily");
        assert_eq!(
            strs(md, "member"),
            vec![
                Some("(unattributed)".into()),
                Some("a@x.com".into()),
                Some("b@x.com".into()),
                Some("inst".into())
            ]
        );
        assert_eq!(i64s(md, "sessions"), vec![0, 0, 1, 0]);
    }

    #[test]
    fn records_of_other_services_do_not_make_anyone_active() {
        let other = r#"{"resourceLogs":[{"scopeLogs":[{"scope":{"name":"io.other"},"logRecords":[{"timeUnixNano":"1791417700000000000","body":{"stringValue":"GET /"},"attributes":[{"key":"user.email","value":{"stringValue":"x@y.z"}}]}]}]}]}"#;
        let (f, _, t) = tables(
            &[vec![other.to_string(), req(DAY0 + 1, "s", "1", "1")]],
            "",
            "UTC",
        );
        assert_eq!(f.records_used, 1);
        assert_eq!(i64s(table(&t, "daily_activity"), "active_users"), vec![1]);
    }

    #[test]
    fn roster_members_without_activity_get_zero_rows_per_month() {
        let roster = "member,member_type,role,aliases\nidle@x.com,user,developer,\n";
        let lines = vec![
            req(DAY0, "s", "1", "1"),
            req(DAY0 + 30 * 86_400, "s2", "1", "1"),
        ];
        let (_, _, t) = tables(&[lines], roster, "UTC");
        let mm = table(&t, "member_monthly");
        assert_eq!(
            strs(mm, "member"),
            vec![
                Some("a@x.com".into()),
                Some("idle@x.com".into()),
                Some("a@x.com".into()),
                Some("idle@x.com".into())
            ]
        );
        assert_eq!(i64s(mm, "active_days"), vec![1, 0, 1, 0]);
        assert_eq!(
            f64s(mm, "spend_usd"),
            vec![Some(1.0), Some(0.0), Some(1.0), Some(0.0)]
        );
    }
}
