//! A deterministic, seeded generator of realistic Claude Code telemetry, laid out as the
//! Collector's `awss3exporter` writes it (`year=/month=/day=/hour=/minute=`, gzip), with a roster.
//! It produces every case the job must handle: duplicates across objects, late uploads, delta
//! and cumulative metrics, sessions whose metrics lack the email their events carry, API-key
//! members, install-only members, records without a session, agents_view sessions, records of
//! other services, and numbers encoded as strings or JSON numbers.

mod objects;
mod session;

use std::fmt::Write as _;

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

/// Nanoseconds in a day.
const DAY_NS: i64 = 86_400_000_000_000;

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

struct Rec {
    time_ns: i64,
    /// Metric: (name, temporality, start_ns, value); event: None.
    metric: Option<(&'static str, u8, i64, f64)>,
    attrs: Vec<(&'static str, V)>,
    /// Index into the resource table.
    resource: usize,
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
    let members = members(&mut rng, args.members);
    out.put(&out.child("roster.csv"), roster_csv(&members).into_bytes())
        .await?;
    let resources = resources(&members);
    let mut recs: Vec<Rec> = Vec::new();
    let mut summary = GenerateSummary::default();
    let mut n = 0u64;
    for d in 0..args.days {
        day_sessions(&mut rng, args, &members, &org, (start, d), &mut recs);
        // One day at a time keeps memory flat however many days are generated.
        objects::write_objects(
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

/// The members with activity: kinds in a fixed rotation, identities from the seed.
fn members(rng: &mut Rng, count: u32) -> Vec<Member> {
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
    (0..count)
        .map(|i| Member {
            kind: kinds[i as usize % kinds.len()],
            email: format!("dev{i:04}@example.com"),
            key_name: format!("ci-key-{i:04}"),
            account: rng.uuid(),
            install: rng.hex(64),
            cumulative: i % 3 == 1,
        })
        .collect()
}

/// The roster: every member the organisation knows, plus one without activity.
fn roster_csv(members: &[Member]) -> String {
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
    roster
}

/// Resources: one per member and half of the range (what OTEL_RESOURCE_ATTRIBUTES and the SDK
/// put there): index `i` before the middle day, `members + i` from it (movers change team).
fn resources(members: &[Member]) -> Vec<Vec<(&'static str, V)>> {
    [false, true]
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
        .collect()
}

/// Day `d`'s sessions of every member, appended to `recs`.
fn day_sessions(
    rng: &mut Rng,
    args: &GenerateArgs,
    members: &[Member],
    org: &str,
    (start, d): (NaiveDate, u32),
    recs: &mut Vec<Rec>,
) {
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
                day0 + DAY_NS - rng.range(60, 900) as i64 * 1_000_000_000
            } else {
                day0 + rng.range(7 * 3600, 20 * 3600) as i64 * 1_000_000_000
            };
            session::session(rng, m, res, org, t0, args.requests_per_session, recs);
        }
    }
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
    if i.is_multiple_of(5) {
        return Vec::new();
    }
    let key = if i % 7 == 3 { "team" } else { "team.id" };
    vec![
        (key, team_of(i, later).to_string()),
        (
            "department",
            if i.is_multiple_of(2) {
                "product"
            } else {
                "infra"
            }
            .to_string(),
        ),
        ("cost_center", cost_center_of(i)),
    ]
}

#[derive(Debug, Default, Clone, Copy)]
pub struct GenerateSummary {
    pub objects: u64,
    pub records: u64,
    pub duplicated_records: u64,
    pub bytes: u64,
}
