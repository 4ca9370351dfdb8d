//! The rules that need every record of a session or series (contract 3.4–3.6), applied once
//! the records are in: cumulative increments per series, events before metrics per
//! (session, day), each session's member; then the fact frames with their strings.

use super::*;

/// Fact rows at the three grains: per (date, member, session), per (date, member, model) and per
/// (date, member, tool).
#[derive(Default)]
struct Grains {
    sessions: BTreeMap<(i32, u32, u32), Measures>,
    models: BTreeMap<(i32, u32, u32), [i64; 6]>,
    tools: BTreeMap<(i32, u32, u32), [i64; 2]>,
}

impl Grains {
    /// A fact (date, member, session, model, tool) with measures `m`, summed into each grain.
    fn emit(
        &mut self,
        date: i32,
        member: u32,
        session: u32,
        model: u32,
        tool: u32,
        m: Measures,
    ) -> Result<()> {
        if m[out::RECORDS] == 0 {
            return Ok(());
        }
        add(
            self.sessions
                .entry((date, member, session))
                .or_insert([0; 13]),
            &m,
        )?;
        if model != sym::NONE {
            add(
                self.models.entry((date, member, model)).or_insert([0; 6]),
                &m[out::REQUESTS..=out::SPEND + 4],
            )?;
        }
        if tool != sym::NONE {
            add(
                self.tools.entry((date, member, tool)).or_insert([0; 2]),
                &m[out::ACCEPTED..=out::REJECTED],
            )?;
        }
        Ok(())
    }
}

/// Adds sums into a row, refusing (not wrapping) one that would pass 2^63.
fn add<const N: usize>(row: &mut [i64; N], m: &[i64]) -> Result<()> {
    for (a, b) in row.iter_mut().zip(m) {
        *a = a.checked_add(*b).ok_or_else(|| {
            crate::Error::Other(
                "a session's sums pass what a 64-bit integer holds: implausible input".into(),
            )
        })?;
    }
    Ok(())
}

impl Accumulator {
    /// Applies the whole-run rules and returns the facts, sorted by date, member, session,
    /// model and tool.
    pub fn finish(mut self) -> Result<Facts> {
        self.release_indexes();
        self.apply_cumulative();
        let (has_req, has_dec) = self.precedence();
        let chosen = self.chosen_members();
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
        let grains = self.fact_rows(&has_req, &has_dec, &member_of)?;
        let records_used = grains
            .sessions
            .values()
            .map(|m| m[out::RECORDS] as u64)
            .sum();
        let set = self.frames(&grains.sessions, &tagged, &grains.models, &grains.tools)?;
        Ok(Facts {
            set,
            records_used,
            records_outside_range: self.outside,
            records_implausible: self.implausible,
        })
    }

    /// What reading needed and the rules do not: the dedup keys and the partial rows' indexes.
    fn release_indexes(&mut self) {
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
    }

    /// 3.4: a cumulative point's increment is its value minus the previous point of its series
    /// (name, attributes, start time); the first counts whole, and so does a drop (a reset).
    /// The sort is stable: points of equal time keep their order of arrival.
    fn apply_cumulative(&mut self) {
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
    }

    /// 3.6: the (session, day) groups whose `api_request` events, and those whose
    /// `tool_decision` events, take precedence over their metrics.
    fn precedence(&self) -> (Set<Group>, Set<Group>) {
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
        (has_req, has_dec)
    }

    /// 3.5: each session's member, from its best candidate.
    fn chosen_members(&mut self) -> Map<u32, u32> {
        let best = std::mem::take(&mut self.best);
        best.iter()
            .map(|(s, c)| (*s, self.member_of(c.as_ref())))
            .collect()
    }

    /// Partial rows → fact rows (date, member, session, model, tool), the member of the
    /// session's; metric points that events override count as records only, under no model or
    /// tool.
    fn fact_rows(
        &self,
        has_req: &Set<Group>,
        has_dec: &Set<Group>,
        member_of: &dyn Fn(&Group) -> u32,
    ) -> Result<Grains> {
        let mut grains = Grains::default();
        let mut emit = |g: &Group, model: u32, tool: u32, m: Measures| {
            grains.emit(g.date, member_of(g), g.session, model, tool, m)
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
                let only = records_only(p[by_tool::MET_RECORDS as usize]);
                emit(g, sym::NONE, sym::NONE, only)?;
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
        Ok(grains)
    }

    /// The per-session facts: keys, member, session, agents flag, tags and dimensions, measures.
    fn session_frame(
        &self,
        sessions: &BTreeMap<(i32, u32, u32), Measures>,
        tagged: &Map<(i32, u32, u32), GroupTags>,
    ) -> Result<DataFrame> {
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
        Ok(DataFrame::new_infer_height(columns)?)
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
        let sessions = self.session_frame(sessions, tagged)?;
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
