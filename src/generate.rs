//! A deterministic, seeded generator of realistic Claude Code telemetry, laid out as the
//! Collector's `awss3exporter` writes it (`year=/month=/day=/hour=/minute=`, gzip), with a roster.
//! It produces every case the job must handle: duplicates across objects, late uploads, delta
//! and cumulative metrics, sessions whose metrics lack the email their events carry, API-key
//! members, install-only members, records without a session, agents_view sessions, records of
//! other services, and numbers encoded as strings or JSON numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use chrono::{NaiveDate, TimeZone, Utc};
use clap::Args;

use crate::error::{Error, Result};
use crate::source::Location;

#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Where to write (`telemetry/…` and `roster.csv` are created below it).
    #[arg(long, value_name = "URL")]
    pub output: String,
    /// Number of organisation members with activity.
    #[arg(long, default_value_t = 12)]
    pub members: u32,
    /// Number of days of activity.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// First day (YYYY-MM-DD, UTC).
    #[arg(long, default_value = "2026-10-01")]
    pub start: String,
    /// Random seed: the same arguments give byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Average sessions per member and day.
    #[arg(long, default_value_t = 2.0)]
    pub sessions_per_day: f64,
    /// Average API requests per session.
    #[arg(long, default_value_t = 10)]
    pub requests_per_session: u32,
    /// Object compression: mixed (mostly gzip, some zstd and plain), gz, zst or none.
    #[arg(long, value_enum, default_value = "mixed")]
    pub compression: Compression,
    /// Records per object, as the Collector's exporter batches them (for example 10000: about
    /// 12 MB of JSON each). Without it, one small object per member and 5 or 10 minutes.
    #[arg(long, value_name = "N")]
    pub records_per_object: Option<usize>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Mixed,
    Gz,
    Zst,
    None,
}

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn hex(&mut self, n: usize) -> String {
        let mut s = String::new();
        while s.len() < n {
            write!(s, "{:016x}", self.next()).unwrap();
        }
        s.truncate(n);
        s
    }
    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// OAuth user in the roster by email.
    RosterUser,
    /// OAuth user whose metrics carry no email (roster alias: account uuid).
    MetricsWithoutEmail,
    /// API key (name injected through OTEL_RESOURCE_ATTRIBUTES), in the roster.
    ApiKey,
    /// Direct API key without a name: only user.id; metrics without session.id.
    InstallOnly,
    /// OAuth user not in the roster; old client (legacy `tool` attribute).
    UnrosteredUser,
    /// Nothing identifies it.
    Anonymous,
}

struct Member {
    kind: Kind,
    email: String,
    key_name: String,
    account: String,
    install: String,
    cumulative: bool,
}

const MODELS: [(&str, f64, f64); 3] = [
    ("claude-sonnet-5", 3e-6, 15e-6),
    ("claude-opus-5", 15e-6, 75e-6),
    ("claude-haiku-5-5", 1e-6, 5e-6),
];
const TOOLS: [&str; 6] = ["Edit", "Write", "MultiEdit", "NotebookEdit", "Read", "Bash"];

/// One attribute value.
#[derive(Clone)]
enum V {
    S(String),
    I(i64),
    D(f64),
}

/// A metric increment before export: (time, name, attributes, value).
type Increment = (i64, &'static str, Vec<(&'static str, V)>, f64);
/// A series' sum within one export window: (name, attributes, value).
type WindowSum = (&'static str, Vec<(&'static str, V)>, f64);

struct Rec {
    time_ns: i64,
    /// Metric: (name, temporality, start_ns, value); event: None.
    metric: Option<(&'static str, u8, i64, f64)>,
    attrs: Vec<(&'static str, V)>,
    /// Index into the resource table.
    resource: usize,
}

fn esc(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes attributes as the Collector (`strings`: int64 as strings) or the JS exporter would.
fn attrs_json(attrs: &[(&str, V)], strings: bool, out: &mut String) {
    out.push('[');
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        esc(k, out);
        out.push_str(",\"value\":{");
        match v {
            V::S(s) => {
                out.push_str("\"stringValue\":");
                esc(s, out);
            }
            V::I(n) if strings => write!(out, "\"intValue\":\"{n}\"").unwrap(),
            V::I(n) => write!(out, "\"intValue\":{n}").unwrap(),
            V::D(d) => write!(out, "\"doubleValue\":{d:?}").unwrap(),
        }
        out.push_str("}}");
    }
    out.push(']');
}

fn int(n: i64, strings: bool) -> String {
    if strings {
        format!("\"{n}\"")
    } else {
        n.to_string()
    }
}

pub async fn generate(args: &GenerateArgs) -> Result<GenerateSummary> {
    let start = NaiveDate::parse_from_str(&args.start, "%Y-%m-%d")
        .map_err(|_| Error::usage(format!("bad --start {:?} (use YYYY-MM-DD)", args.start)))?;
    if args.members == 0 || args.days == 0 {
        return Err(Error::usage("--members and --days must be at least 1"));
    }
    let out = Location::parse(&args.output, true)?;
    let mut rng = Rng(args.seed ^ 0x5eed);
    let org = rng.uuid();
    let kinds = [
        Kind::RosterUser,
        Kind::MetricsWithoutEmail,
        Kind::ApiKey,
        Kind::RosterUser,
        Kind::InstallOnly,
        Kind::UnrosteredUser,
        Kind::RosterUser,
        Kind::Anonymous,
    ];
    let members: Vec<Member> = (0..args.members)
        .map(|i| Member {
            kind: kinds[i as usize % kinds.len()],
            email: format!("dev{i:04}@example.com"),
            key_name: format!("ci-key-{i:04}"),
            account: rng.uuid(),
            install: rng.hex(64),
            cumulative: i % 3 == 1,
        })
        .collect();

    // Roster: every member the organisation knows, plus one without activity.
    let roles = [
        "developer",
        "admin",
        "billing",
        "owner",
        "developer",
        "user",
    ];
    let mut roster = String::from("member,member_type,role,aliases,team,cost_center\n");
    for (i, m) in members.iter().enumerate() {
        let role = roles[i % roles.len()];
        // The roster's team: the team of the first half of the range (a mover's old team).
        let org = format!("{},{}", team_of(i, false), cost_center_of(i));
        match m.kind {
            Kind::RosterUser => writeln!(roster, "{},user,{role},,{org}", m.email).unwrap(),
            Kind::MetricsWithoutEmail => {
                writeln!(roster, "{},user,{role},{},{org}", m.email, m.account).unwrap()
            }
            Kind::ApiKey => writeln!(roster, "{},api_key,{role},,{org}", m.key_name).unwrap(),
            _ => {}
        }
    }
    roster.push_str("idle@example.com,user,developer,idle-account,payments,\n");
    out.put(&out.child("roster.csv"), roster.into_bytes())
        .await?;

    // Resources: one per member and half of the range (what OTEL_RESOURCE_ATTRIBUTES and the
    // SDK put there): index `i` before the middle day, `members + i` from it (movers change team).
    let resources: Vec<Vec<(&'static str, V)>> = [false, true]
        .into_iter()
        .flat_map(|later| {
            members.iter().enumerate().map(move |(i, m)| {
                let mut r = vec![
                    ("service.name", V::S("claude-code".into())),
                    ("service.version", V::S("2.1.294".into())),
                    ("os.type", V::S("linux".into())),
                ];
                if m.kind == Kind::ApiKey {
                    r.push(("api_key.name", V::S(m.key_name.clone())));
                }
                r.extend(
                    resource_tags(i, later)
                        .into_iter()
                        .map(|(k, v)| (k, V::S(v))),
                );
                r
            })
        })
        .collect();

    let mut recs: Vec<Rec> = Vec::new();
    let mut summary = GenerateSummary::default();
    let mut n = 0u64;
    let day_ns = 86_400_000_000_000i64;
    for d in 0..args.days {
        let day = start + chrono::Days::new(d as u64);
        let day0 = Utc
            .from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
            .timestamp_nanos_opt()
            .unwrap();
        let later = d >= args.days / 2 && args.days > 1;
        for (mi, m) in members.iter().enumerate() {
            let res = if later { members.len() + mi } else { mi };
            let n_sessions = rng.below((args.sessions_per_day * 2.0).round() as u64 + 1);
            for _ in 0..n_sessions {
                // Mostly working hours; some sessions run across midnight.
                let t0 = if rng.chance(0.08) {
                    day0 + day_ns - rng.range(60, 900) as i64 * 1_000_000_000
                } else {
                    day0 + rng.range(7 * 3600, 20 * 3600) as i64 * 1_000_000_000
                };
                session(
                    &mut rng,
                    m,
                    res,
                    &org,
                    t0,
                    args.requests_per_session,
                    &mut recs,
                );
            }
        }
        // One day at a time keeps memory flat however many days are generated.
        write_objects(
            &recs,
            &resources,
            &mut rng,
            &out,
            (args.compression, args.records_per_object),
            &mut n,
            &mut summary,
        )
        .await?;
        recs.clear();
    }
    Ok(summary)
}

const TEAMS: [&str; 4] = ["payments", "platform", "search", "mobile"];

/// Member `i`'s team (`later`: in the second half of the range, where every fifth member from
/// the second has moved to the next team).
fn team_of(i: usize, later: bool) -> &'static str {
    TEAMS[(i + usize::from(later && i % 5 == 1)) % TEAMS.len()]
}

fn cost_center_of(i: usize) -> String {
    format!("eng-{}", 100 + i % 3)
}

/// The `OTEL_RESOURCE_ATTRIBUTES` a member's installation sets: every fifth member (from the
/// first) sets none (its team is only in the roster), every seventh sets `team` rather than
/// `team.id`; the others `team.id`, `department` and `cost_center`.
fn resource_tags(i: usize, later: bool) -> Vec<(&'static str, String)> {
    if i % 5 == 0 {
        return Vec::new();
    }
    let key = if i % 7 == 3 { "team" } else { "team.id" };
    vec![
        (key, team_of(i, later).to_string()),
        (
            "department",
            if i % 2 == 0 { "product" } else { "infra" }.to_string(),
        ),
        ("cost_center", cost_center_of(i)),
    ]
}

/// Batches a day's records into objects by arrival (logs every 5 minutes, metrics every 10, per
/// member resource) and writes them: compressed, sometimes late, sometimes twice.
async fn write_objects(
    recs: &[Rec],
    resources: &[Vec<(&'static str, V)>],
    rng: &mut Rng,
    out: &Location,
    (compression, per_object): (Compression, Option<usize>),
    n: &mut u64,
    summary: &mut GenerateSummary,
) -> Result<()> {
    let day_ns = 86_400_000_000_000i64;
    // (upload slot, metrics?, resource or usize::MAX for a batch of every member) → records
    let mut objects: BTreeMap<(i64, bool, usize), Vec<usize>> = BTreeMap::new();
    match per_object {
        None => {
            for (i, r) in recs.iter().enumerate() {
                let is_metric = r.metric.is_some();
                let every = if is_metric { 600 } else { 300 } * 1_000_000_000i64;
                let slot = (r.time_ns / every + 1) * every;
                objects
                    .entry((slot, is_metric, r.resource))
                    .or_default()
                    .push(i);
            }
        }
        Some(size) => {
            // The Collector's batches: records of every member in arrival order, cut every
            // `size` records; uploaded when the batch is full.
            for is_metric in [false, true] {
                let mut idx: Vec<usize> = (0..recs.len())
                    .filter(|&i| recs[i].metric.is_some() == is_metric)
                    .collect();
                idx.sort_by_key(|&i| recs[i].time_ns);
                for chunk in idx.chunks(size.max(1)) {
                    let last = chunk.iter().map(|&i| recs[i].time_ns).max().unwrap_or(0);
                    objects.insert((last + 1, is_metric, usize::MAX), chunk.to_vec());
                }
            }
        }
    }
    for ((slot, is_metric, res), idx) in objects {
        *n += 1;
        let strings = rng.chance(0.8);
        let mut text = String::new();
        // One line per resource and up to 40 records, as the OTLP exporter groups them.
        let mut by_resource: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in &idx {
            by_resource
                .entry(if res == usize::MAX {
                    recs[i].resource
                } else {
                    res
                })
                .or_default()
                .push(i);
        }
        for (res, idx) in &by_resource {
            for chunk in idx.chunks(40) {
                if is_metric {
                    metrics_line(
                        recs,
                        chunk,
                        &resources[*res],
                        strings,
                        rng.chance(0.1),
                        &mut text,
                    );
                } else {
                    logs_line(recs, chunk, &resources[*res], strings, &mut text);
                }
                text.push('\n');
            }
        }
        summary.records += idx.len() as u64;
        // Upload time: shortly after the slot, sometimes days late (an agent offline).
        let mut upload = slot + rng.range(1, 120) as i64 * 1_000_000_000;
        if rng.chance(0.03) {
            upload += rng.range(1, 2) as i64 * day_ns;
        }
        let prefix = if is_metric { "metrics" } else { "logs" };
        let compress = match compression {
            Compression::Gz => "gz",
            Compression::Zst => "zst",
            Compression::None => "",
            Compression::Mixed if n.is_multiple_of(17) => "zst",
            Compression::Mixed if n.is_multiple_of(13) => "",
            Compression::Mixed => "gz",
        };
        let bytes = encode(text.as_bytes(), compress);
        let copies = if rng.chance(0.03) { 2 } else { 1 };
        for c in 0..copies {
            // A re-upload (at-least-once delivery) lands in a later partition.
            let at = upload + c as i64 * rng.range(60, 7200) as i64 * 1_000_000_000;
            let key = object_key(at, prefix, rng.range(100_000_000, 999_999_998), compress);
            out.put(&out.child(&key), bytes.clone()).await?;
            summary.objects += 1;
            summary.bytes += bytes.len() as u64;
            if c > 0 {
                summary.duplicated_records += idx.len() as u64;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
pub struct GenerateSummary {
    pub objects: u64,
    pub records: u64,
    pub duplicated_records: u64,
    pub bytes: u64,
}

fn encode(data: &[u8], how: &str) -> Vec<u8> {
    match how {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zst" => zstd::encode_all(data, 3).unwrap(),
        _ => data.to_vec(),
    }
}

fn object_key(at_ns: i64, prefix: &str, unique: u64, compress: &str) -> String {
    let t = Utc.timestamp_nanos(at_ns);
    let ext = if compress.is_empty() {
        "json".to_string()
    } else {
        format!("json.{compress}")
    };
    format!(
        "telemetry/{}/{prefix}_{unique}.{ext}",
        t.format("year=%Y/month=%m/day=%d/hour=%H/minute=%M")
    )
}

#[allow(clippy::too_many_arguments)]
fn session(
    rng: &mut Rng,
    m: &Member,
    res: usize,
    org: &str,
    t0: i64,
    avg_requests: u32,
    recs: &mut Vec<Rec>,
) {
    let sid = rng.uuid();
    let agents = rng.chance(0.05);
    let logs = rng.chance(0.85); // some sessions export metrics only
    let metrics = rng.chance(0.95) || !logs;
    let mut std_attrs: Vec<(&'static str, V)> = Vec::new();
    let with_session = m.kind != Kind::InstallOnly || rng.chance(0.5);
    if with_session {
        std_attrs.push(("session.id", V::S(sid.clone())));
    }
    if m.kind != Kind::Anonymous {
        std_attrs.push(("user.id", V::S(m.install.clone())));
    }
    let oauth = matches!(
        m.kind,
        Kind::RosterUser | Kind::MetricsWithoutEmail | Kind::UnrosteredUser
    );
    let mut metric_attrs = std_attrs.clone();
    if oauth {
        std_attrs.push(("organization.id", V::S(org.to_string())));
        std_attrs.push(("user.account_uuid", V::S(m.account.clone())));
        std_attrs.push(("user.email", V::S(m.email.clone())));
        metric_attrs.push(("organization.id", V::S(org.to_string())));
        metric_attrs.push(("user.account_uuid", V::S(m.account.clone())));
        if m.kind != Kind::MetricsWithoutEmail {
            metric_attrs.push(("user.email", V::S(m.email.clone())));
        }
    }
    let temporality = if m.cumulative { 2u8 } else { 1u8 };
    // Metric increments: (time, name, attrs, value), exported per 60 s window.
    let mut incs: Vec<Increment> = Vec::new();
    let start_type = if agents {
        "agents_view"
    } else if rng.chance(0.2) {
        "resume"
    } else {
        "fresh"
    };
    incs.push((
        t0,
        "claude_code.session.count",
        vec![("start_type", V::S(start_type.into()))],
        1.0,
    ));
    let mut seq = 0i64;
    let mut t = t0;
    let n_req = if agents {
        1
    } else {
        rng.range(1, 2 * avg_requests.max(1) as u64 - 1)
    };
    let legacy = m.kind == Kind::UnrosteredUser;
    let event = |t: i64,
                 name: &'static str,
                 seq: &mut i64,
                 extra: Vec<(&'static str, V)>,
                 recs: &mut Vec<Rec>| {
        if !logs {
            return;
        }
        let mut a = std_attrs.clone();
        a.push(("event.name", V::S(name.into())));
        a.push((
            "event.timestamp",
            V::S(
                Utc.timestamp_nanos(t)
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            ),
        ));
        a.push(("event.sequence", V::I(*seq)));
        *seq += 1;
        a.extend(extra);
        recs.push(Rec {
            time_ns: t,
            metric: None,
            attrs: a,
            resource: res,
        });
    };
    for _ in 0..n_req {
        t += rng.range(5, 90) as i64 * 1_000_000_000;
        if rng.chance(0.3) {
            event(
                t,
                "user_prompt",
                &mut seq,
                vec![("prompt_length", V::S(rng.range(5, 400).to_string()))],
                recs,
            );
        }
        let (model, pin, pout) = MODELS[rng.below(MODELS.len() as u64) as usize];
        let (i_t, o_t, cr, cc) = (
            rng.range(1, 4000),
            rng.range(10, 2000),
            rng.range(0, 30000),
            rng.range(0, 5000),
        );
        let cost = ((i_t as f64 * pin
            + o_t as f64 * pout
            + cr as f64 * pin * 0.1
            + cc as f64 * pin * 1.25)
            * 1e8)
            .round()
            / 1e8;
        let cost_v = if rng.chance(0.1) {
            V::S(format!("{cost}"))
        } else {
            V::D(cost)
        };
        event(
            t,
            "api_request",
            &mut seq,
            vec![
                ("model", V::S(model.into())),
                ("cost_usd", cost_v),
                ("cost_usd_micros", V::I((cost * 1e6).round() as i64)),
                ("input_tokens", V::I(i_t as i64)),
                ("output_tokens", V::I(o_t as i64)),
                ("cache_read_tokens", V::I(cr as i64)),
                ("cache_creation_tokens", V::I(cc as i64)),
                ("duration_ms", V::I(rng.range(200, 9000) as i64)),
            ],
            recs,
        );
        let tm = t + 1_000_000_000;
        incs.push((
            tm,
            "claude_code.cost.usage",
            vec![("model", V::S(model.into()))],
            cost,
        ));
        for (typ, v) in [
            ("input", i_t),
            ("output", o_t),
            ("cacheRead", cr),
            ("cacheCreation", cc),
        ] {
            incs.push((
                tm,
                "claude_code.token.usage",
                vec![("model", V::S(model.into())), ("type", V::S(typ.into()))],
                v as f64,
            ));
        }
        if rng.chance(0.6) {
            let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
            let accept = rng.chance(0.85);
            let decision = if accept { "accept" } else { "reject" };
            let source = if accept {
                "user_temporary"
            } else {
                "user_reject"
            };
            t += rng.range(1, 20) as i64 * 1_000_000_000;
            event(
                t,
                "tool_decision",
                &mut seq,
                vec![
                    ("tool_name", V::S(tool.into())),
                    ("decision", V::S(decision.into())),
                    ("source", V::S(source.into())),
                    ("tool_use_id", V::S(format!("toolu_{}", rng.hex(12)))),
                ],
                recs,
            );
            if ["Edit", "Write", "MultiEdit", "NotebookEdit"].contains(&tool) {
                let tool_key = if legacy { "tool" } else { "tool_name" };
                incs.push((
                    t,
                    "claude_code.code_edit_tool.decision",
                    vec![
                        (tool_key, V::S(tool.into())),
                        ("decision", V::S(decision.into())),
                        ("source", V::S(source.into())),
                        ("language", V::S("Rust".into())),
                    ],
                    1.0,
                ));
                if accept {
                    incs.push((
                        t,
                        "claude_code.lines_of_code.count",
                        vec![("type", V::S("added".into()))],
                        rng.range(1, 60) as f64,
                    ));
                    incs.push((
                        t,
                        "claude_code.lines_of_code.count",
                        vec![("type", V::S("removed".into()))],
                        rng.range(0, 30) as f64,
                    ));
                }
            }
        }
        if rng.chance(0.05) {
            incs.push((t, "claude_code.commit.count", vec![], 1.0));
        }
        if rng.chance(0.01) {
            incs.push((t, "claude_code.pull_request.count", vec![], 1.0));
        }
    }
    if !metrics {
        return;
    }
    // Export windows of 60 s from the session start: delta sums per window, or running totals.
    let window = 60_000_000_000i64;
    let mut per_window: BTreeMap<(i64, String), WindowSum> = BTreeMap::new();
    for (t, name, attrs, v) in incs {
        let w = (t - t0) / window;
        let key = format!(
            "{name}|{}",
            attrs
                .iter()
                .map(|(k, v)| format!(
                    "{k}={}",
                    match v {
                        V::S(s) => s.clone(),
                        V::I(i) => i.to_string(),
                        V::D(d) => d.to_string(),
                    }
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let e = per_window.entry((w, key)).or_insert((name, attrs, 0.0));
        e.2 += v;
    }
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for ((w, key), (name, attrs, v)) in per_window {
        let end = t0 + (w + 1) * window;
        let (start, value) = if temporality == 2 {
            let tot = totals.entry(key).or_insert(0.0);
            *tot += v;
            (t0, *tot)
        } else {
            (end - window, v)
        };
        let mut a = metric_attrs.clone();
        a.extend(attrs);
        recs.push(Rec {
            time_ns: end,
            metric: Some((name, temporality, start, (value * 1e8).round() / 1e8)),
            attrs: a,
            resource: res,
        });
    }
}

fn logs_line(recs: &[Rec], idx: &[usize], resource: &[(&str, V)], strings: bool, out: &mut String) {
    out.push_str("{\"resourceLogs\":[{\"resource\":{\"attributes\":");
    attrs_json(resource, strings, out);
    out.push_str("},\"scopeLogs\":[{\"scope\":{\"name\":\"com.anthropic.claude_code.events\",\"version\":\"2.1.294\"},\"logRecords\":[");
    for (n, &i) in idx.iter().enumerate() {
        let r = &recs[i];
        if n > 0 {
            out.push(',');
        }
        let name = r
            .attrs
            .iter()
            .find(|(k, _)| *k == "event.name")
            .map(|(_, v)| match v {
                V::S(s) => s.as_str(),
                _ => "",
            })
            .unwrap_or("");
        write!(
            out,
            "{{\"timeUnixNano\":{t},\"observedTimeUnixNano\":{t},\"body\":{{\"stringValue\":\"claude_code.{name}\"}},\"attributes\":",
            t = int(r.time_ns, strings)
        )
        .unwrap();
        attrs_json(&r.attrs, strings, out);
        out.push_str(",\"droppedAttributesCount\":0,\"traceId\":\"\",\"spanId\":\"\"}");
    }
    out.push_str("]}]}]}");
}

fn metrics_line(
    recs: &[Rec],
    idx: &[usize],
    resource: &[(&str, V)],
    strings: bool,
    foreign: bool,
    out: &mut String,
) {
    out.push_str("{\"resourceMetrics\":[{\"resource\":{\"attributes\":");
    attrs_json(resource, strings, out);
    out.push_str("},\"scopeMetrics\":[{\"scope\":{\"name\":\"com.anthropic.claude_code\",\"version\":\"2.1.294\"},\"metrics\":[");
    for (n, &i) in idx.iter().enumerate() {
        let r = &recs[i];
        let (name, temporality, start, value) = r.metric.unwrap();
        if n > 0 {
            out.push(',');
        }
        write!(
            out,
            "{{\"name\":\"{name}\",\"sum\":{{\"dataPoints\":[{{\"attributes\":"
        )
        .unwrap();
        attrs_json(&r.attrs, strings, out);
        write!(
            out,
            ",\"startTimeUnixNano\":{},\"timeUnixNano\":{},\"asDouble\":{value:?}}}],\"aggregationTemporality\":{temporality},\"isMonotonic\":true}}}}",
            int(start, strings),
            int(r.time_ns, strings)
        )
        .unwrap();
    }
    out.push_str("]}]}");
    if foreign {
        // Another service's metrics share the pipeline: ignored, but counted.
        let t = recs[idx[0]].time_ns;
        write!(
            out,
            ",{{\"resource\":{{\"attributes\":[{{\"key\":\"service.name\",\"value\":{{\"stringValue\":\"checkout-api\"}}}}]}},\"scopeMetrics\":[{{\"metrics\":[{{\"name\":\"http.server.request.count\",\"sum\":{{\"dataPoints\":[{{\"timeUnixNano\":{},\"asInt\":{}}}],\"aggregationTemporality\":1}}}}]}}]}}",
            int(t, strings),
            int(7, strings)
        )
        .unwrap();
    }
    out.push_str("]}");
}
