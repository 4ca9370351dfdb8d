//! One simulated session: its events (prompts, API requests, tool decisions) and the metric
//! increments behind them, exported in 60 s windows as delta sums or running totals.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::{Kind, Member, Rec, Rng, MODELS, TOOLS, V};

/// A metric increment before export: (time, name, attributes, value).
type Increment = (i64, &'static str, Vec<(&'static str, V)>, f64);
/// A series' sum within one export window: (name, attributes, value).
type WindowSum = (&'static str, Vec<(&'static str, V)>, f64);
type Attrs = Vec<(&'static str, V)>;

/// A session in progress: what its events carry and the increments its metrics will export.
struct Session {
    /// Whether the session exports events (some export metrics only).
    logs: bool,
    /// The attributes of every event.
    std_attrs: Attrs,
    resource: usize,
    seq: i64,
    incs: Vec<Increment>,
    /// An old client: the edit-tool metric names its tool `tool`.
    legacy: bool,
}

pub(super) fn session(
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
    let (std_attrs, metric_attrs) = identity_attrs(rng, m, &sid, org);
    let mut s = Session {
        logs,
        std_attrs,
        resource: res,
        seq: 0,
        incs: Vec::new(),
        legacy: m.kind == Kind::UnrosteredUser,
    };
    let start_type = if agents {
        "agents_view"
    } else if rng.chance(0.2) {
        "resume"
    } else {
        "fresh"
    };
    s.incs.push((
        t0,
        "claude_code.session.count",
        vec![("start_type", V::S(start_type.into()))],
        1.0,
    ));
    let n_req = if agents {
        1
    } else {
        rng.range(1, 2 * avg_requests.max(1) as u64 - 1)
    };
    let mut t = t0;
    for _ in 0..n_req {
        t = s.request(rng, t, recs);
    }
    if metrics {
        let temporality = if m.cumulative { 2u8 } else { 1u8 };
        export(s.incs, (t0, temporality), &metric_attrs, res, recs);
    }
}

/// The identity attributes of the session's events and of its metrics (a member of kind
/// `MetricsWithoutEmail` leaves the email out of its metrics).
fn identity_attrs(rng: &mut Rng, m: &Member, sid: &str, org: &str) -> (Attrs, Attrs) {
    let mut std_attrs: Attrs = Vec::new();
    let with_session = m.kind != Kind::InstallOnly || rng.chance(0.5);
    if with_session {
        std_attrs.push(("session.id", V::S(sid.to_string())));
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
    (std_attrs, metric_attrs)
}

impl Session {
    /// An event at `t` with the session's attributes, its sequence number and `extra`.
    fn event(&mut self, t: i64, name: &'static str, extra: Attrs, recs: &mut Vec<Rec>) {
        if !self.logs {
            return;
        }
        let mut a = self.std_attrs.clone();
        a.push(("event.name", V::S(name.into())));
        a.push((
            "event.timestamp",
            V::S(
                Utc.timestamp_nanos(t)
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            ),
        ));
        a.push(("event.sequence", V::I(self.seq)));
        self.seq += 1;
        a.extend(extra);
        recs.push(Rec {
            time_ns: t,
            metric: None,
            attrs: a,
            resource: self.resource,
        });
    }

    /// One turn: sometimes a prompt, an API request, sometimes a tool decision, a commit or a
    /// pull request. Returns the time after it.
    fn request(&mut self, rng: &mut Rng, mut t: i64, recs: &mut Vec<Rec>) -> i64 {
        t += rng.range(5, 90) as i64 * 1_000_000_000;
        if rng.chance(0.3) {
            let length = V::S(rng.range(5, 400).to_string());
            self.event(t, "user_prompt", vec![("prompt_length", length)], recs);
        }
        self.api_request(rng, t, recs);
        if rng.chance(0.6) {
            t = self.tool_decision(rng, t, recs);
        }
        if rng.chance(0.05) {
            self.incs.push((t, "claude_code.commit.count", vec![], 1.0));
        }
        if rng.chance(0.01) {
            self.incs
                .push((t, "claude_code.pull_request.count", vec![], 1.0));
        }
        t
    }

    /// An `api_request` event and its cost and token increments.
    fn api_request(&mut self, rng: &mut Rng, t: i64, recs: &mut Vec<Rec>) {
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
        let attrs = vec![
            ("model", V::S(model.into())),
            ("cost_usd", cost_v),
            ("cost_usd_micros", V::I((cost * 1e6).round() as i64)),
            ("input_tokens", V::I(i_t as i64)),
            ("output_tokens", V::I(o_t as i64)),
            ("cache_read_tokens", V::I(cr as i64)),
            ("cache_creation_tokens", V::I(cc as i64)),
            ("duration_ms", V::I(rng.range(200, 9000) as i64)),
        ];
        self.event(t, "api_request", attrs, recs);
        let tm = t + 1_000_000_000;
        self.incs.push((
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
            self.incs.push((
                tm,
                "claude_code.token.usage",
                vec![("model", V::S(model.into())), ("type", V::S(typ.into()))],
                v as f64,
            ));
        }
    }

    /// A `tool_decision` event; for an edit tool its decision increment and, when accepted,
    /// lines added and removed. Returns the time of the decision.
    fn tool_decision(&mut self, rng: &mut Rng, mut t: i64, recs: &mut Vec<Rec>) -> i64 {
        let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
        let accept = rng.chance(0.85);
        let decision = if accept { "accept" } else { "reject" };
        let source = if accept {
            "user_temporary"
        } else {
            "user_reject"
        };
        t += rng.range(1, 20) as i64 * 1_000_000_000;
        let attrs = vec![
            ("tool_name", V::S(tool.into())),
            ("decision", V::S(decision.into())),
            ("source", V::S(source.into())),
            ("tool_use_id", V::S(format!("toolu_{}", rng.hex(12)))),
        ];
        self.event(t, "tool_decision", attrs, recs);
        if !["Edit", "Write", "MultiEdit", "NotebookEdit"].contains(&tool) {
            return t;
        }
        let tool_key = if self.legacy { "tool" } else { "tool_name" };
        self.incs.push((
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
            for (typ, lo, hi) in [("added", 1, 60), ("removed", 0, 30)] {
                self.incs.push((
                    t,
                    "claude_code.lines_of_code.count",
                    vec![("type", V::S(typ.into()))],
                    rng.range(lo, hi) as f64,
                ));
            }
        }
        t
    }
}

/// Export windows of 60 s from the session start: delta sums per window, or running totals
/// (temporality 2).
fn export(
    incs: Vec<Increment>,
    (t0, temporality): (i64, u8),
    metric_attrs: &Attrs,
    res: usize,
    recs: &mut Vec<Rec>,
) {
    let window = 60_000_000_000i64;
    let mut per_window: BTreeMap<(i64, String), WindowSum> = BTreeMap::new();
    for (t, name, attrs, v) in incs {
        let w = (t - t0) / window;
        let e = per_window
            .entry((w, series_key(name, &attrs)))
            .or_insert((name, attrs, 0.0));
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

/// A series' identity: its name and attributes.
fn series_key(name: &str, attrs: &Attrs) -> String {
    let attrs = attrs
        .iter()
        .map(|(k, v)| {
            let v = match v {
                V::S(s) => s.clone(),
                V::I(i) => i.to_string(),
                V::D(d) => d.to_string(),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(",");
    format!("{name}|{attrs}")
}
