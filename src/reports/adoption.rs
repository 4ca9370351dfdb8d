//! Adoption (contract 5.5.3): `daily_adoption` and `members`, from every stored date's
//! per-member rows, read a month at a time in date order. Memory follows the members (one
//! slot each), not the stored rows.

use polars::prelude::*;

use crate::config::roster::Roster;
use crate::error::Result;
use crate::facts::{date_column, fcol, PICO_PER_USD};
use crate::schema::col as c;

const NEVER: i32 = i32::MIN;

/// Every stored (date, member) row is looked up here each run: a fast hash, not SipHash.
type Map<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// A date's rows as (member, member type, id), in row order.
type DateIds<'a> = Vec<(&'a str, &'a str, u32)>;

/// Folds months of per-(date, member) rows, in date order, into the two tables.
pub struct Adoption {
    /// Member → member type → id.
    ids: Map<String, Map<String, u32>>,
    names: Vec<(String, String)>,
    /// The roster's members are the first `roster_len` ids, with the roster's role.
    roster_len: usize,
    has_roster: bool,
    role: Vec<Option<String>>,
    first: Vec<i32>,
    last: Vec<i32>,
    /// Over the 28 days ending on `last_day`.
    days_28d: Vec<i64>,
    spend_28d: Vec<i128>,
    last_day: i32,
    /// Rows of `daily_adoption`: date, active, 7d, 28d, new, roster active 28d.
    rows: Vec<(i32, i64, i64, i64, i64, i64)>,
}

impl Adoption {
    /// `last_day`: the last stored date (days since 1970-01-01); `has_roster`: whether the run
    /// has a roster (else the roster columns are null).
    pub fn new(roster: &Roster, has_roster: bool, last_day: i32) -> Adoption {
        let mut a = Adoption {
            ids: Map::default(),
            names: Vec::new(),
            roster_len: roster.members.len(),
            has_roster,
            role: Vec::new(),
            first: Vec::new(),
            last: Vec::new(),
            days_28d: Vec::new(),
            spend_28d: Vec::new(),
            last_day,
            rows: Vec::new(),
        };
        for m in &roster.members {
            let id = a.id(&m.member, &m.member_type);
            a.role[id as usize] = Some(m.role.clone());
        }
        a
    }

    fn id(&mut self, member: &str, typ: &str) -> u32 {
        // Looked up by borrowed strings: a known member costs no allocation (every stored
        // (date, member) row comes through here each run).
        if let Some(&id) = self.ids.get(member).and_then(|t| t.get(typ)) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push((member.to_string(), typ.to_string()));
        self.ids
            .entry(member.to_string())
            .or_default()
            .insert(typ.to_string(), id);
        self.role.push(None);
        self.first.push(NEVER);
        self.last.push(NEVER);
        self.days_28d.push(0);
        self.spend_28d.push(0);
        id
    }

    /// One month's per-(date, member) rows, sorted by date; months must come in order.
    pub fn add_month(&mut self, member_days: &DataFrame) -> Result<()> {
        let d = member_days.column(fcol::DATE)?.cast(&DataType::Int32)?;
        let day: Vec<i32> = d.i32()?.into_no_null_iter().collect();
        let member = member_days.column(c::MEMBER)?.str()?;
        let typ = member_days.column(c::MEMBER_TYPE)?.str()?;
        let role = member_days.column(c::ROLE)?.str()?;
        let spend = member_days.column(fcol::SPEND_PICO)?.i64()?;
        let mut rows = member
            .iter()
            .zip(typ.iter())
            .zip(role.iter())
            .zip(spend.iter());
        // A date's rows are sorted by member, and most members of one date are those of the
        // date before: each row's id is found by walking the previous date's rows alongside
        // (sequential reads), and looked up in the map only when the member is not there.
        let (mut prev, mut cur): (DateIds, DateIds) = (Vec::new(), Vec::new());
        let mut r = 0;
        while r < day.len() {
            let date = day[r];
            let (mut active, mut new) = (0i64, 0i64);
            let mut cursor = 0;
            while r < day.len() && day[r] == date {
                let (((member, typ), role), spend) = rows.next().expect("one per date");
                let key = (member.unwrap_or(""), typ.unwrap_or(""));
                while prev.get(cursor).is_some_and(|p| (p.0, p.1) < key) {
                    cursor += 1;
                }
                let id = match prev.get(cursor) {
                    Some(&(m, t, id)) if (m, t) == key => {
                        cursor += 1;
                        id
                    }
                    _ => self.id(key.0, key.1),
                };
                cur.push((key.0, key.1, id));
                let id = id as usize;
                if self.first[id] == NEVER {
                    self.first[id] = date;
                    new += 1;
                }
                self.last[id] = date;
                if id >= self.roster_len {
                    if let Some(role) = role {
                        if self.role[id].as_deref() != Some(role) {
                            self.role[id] = Some(role.to_string());
                        }
                    }
                }
                if date > self.last_day - 28 {
                    self.days_28d[id] += 1;
                    self.spend_28d[id] += spend.unwrap_or(0) as i128;
                }
                active += 1;
                r += 1;
            }
            std::mem::swap(&mut prev, &mut cur);
            cur.clear();
            let since = |n: i32| self.last.iter().filter(|&&l| l > date - n).count() as i64;
            let roster_28d = self.last[..self.roster_len]
                .iter()
                .filter(|&&l| l > date - 28)
                .count() as i64;
            self.rows
                .push((date, active, since(7), since(28), new, roster_28d));
        }
        Ok(())
    }

    /// `daily_adoption` and `members`.
    pub fn finish(self) -> Result<(DataFrame, DataFrame)> {
        Ok((self.daily_frame()?, self.members_frame()?))
    }

    /// `daily_adoption`: a row per date folded; roster columns null without a roster.
    fn daily_frame(&self) -> Result<DataFrame> {
        let roster = |v: i64| self.has_roster.then_some(v);
        Ok(DataFrame::new_infer_height(vec![
            date_column(c::DATE, self.rows.iter().map(|r| r.0).collect())?,
            Column::new(
                c::ACTIVE_USERS.into(),
                self.rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
            Column::new(
                c::ACTIVE_USERS_7D.into(),
                self.rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            ),
            Column::new(
                c::ACTIVE_USERS_28D.into(),
                self.rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            ),
            Column::new(
                c::NEW_USERS.into(),
                self.rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            ),
            Column::new(
                c::ROSTER_MEMBERS.into(),
                self.rows
                    .iter()
                    .map(|_| roster(self.roster_len as i64))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                c::ROSTER_ACTIVE_28D.into(),
                self.rows.iter().map(|r| roster(r.5)).collect::<Vec<_>>(),
            ),
        ])?)
    }

    /// `members`: a row per member seen or in the roster, sorted by (member, member type).
    fn members_frame(&self) -> Result<DataFrame> {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        order.sort_by(|&a, &b| self.names[a].cmp(&self.names[b]));
        let seen = |v: i32| (v != NEVER).then_some(v);
        Ok(DataFrame::new_infer_height(vec![
            Column::new(
                c::MEMBER.into(),
                order
                    .iter()
                    .map(|&i| self.names[i].0.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                c::MEMBER_TYPE.into(),
                order
                    .iter()
                    .map(|&i| self.names[i].1.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                c::ROLE.into(),
                order
                    .iter()
                    .map(|&i| self.role[i].as_deref())
                    .collect::<Vec<_>>(),
            ),
            opt_date_column(
                c::FIRST_ACTIVE,
                order.iter().map(|&i| seen(self.first[i])).collect(),
            )?,
            opt_date_column(
                c::LAST_ACTIVE,
                order.iter().map(|&i| seen(self.last[i])).collect(),
            )?,
            Column::new(
                c::ACTIVE_DAYS_28D.into(),
                order.iter().map(|&i| self.days_28d[i]).collect::<Vec<_>>(),
            ),
            Column::new(
                c::SPEND_USD_28D.into(),
                order
                    .iter()
                    .map(|&i| self.spend_28d[i] as f64 / PICO_PER_USD)
                    .collect::<Vec<f64>>(),
            ),
            Column::new(
                c::IN_ROSTER.into(),
                order
                    .iter()
                    .map(|&i| i < self.roster_len)
                    .collect::<Vec<_>>(),
            ),
        ])?)
    }
}

/// A nullable Date column from days since 1970-01-01.
fn opt_date_column(name: &str, days: Vec<Option<i32>>) -> PolarsResult<Column> {
    Column::new(name.into(), days).cast(&DataType::Date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::days_since_epoch;
    use chrono::NaiveDate;

    fn day(s: &str) -> i32 {
        days_since_epoch(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    fn rows(r: &[(&str, &str, i64)]) -> DataFrame {
        DataFrame::new_infer_height(vec![
            date_column(fcol::DATE, r.iter().map(|x| day(x.0)).collect()).unwrap(),
            Column::new(c::MEMBER.into(), r.iter().map(|x| x.1).collect::<Vec<_>>()),
            Column::new(
                c::MEMBER_TYPE.into(),
                r.iter().map(|_| "user").collect::<Vec<_>>(),
            ),
            Column::new(
                c::ROLE.into(),
                r.iter().map(|_| None::<&str>).collect::<Vec<_>>(),
            ),
            Column::new(
                fcol::SPEND_PICO.into(),
                r.iter().map(|x| x.2).collect::<Vec<_>>(),
            ),
        ])
        .unwrap()
    }

    fn ints(df: &DataFrame, name: &str) -> Vec<Option<i64>> {
        df.column(name).unwrap().i64().unwrap().iter().collect()
    }

    #[test]
    fn rolling_counts_are_distinct_members_not_sums_and_cross_months() {
        let roster = Roster::parse(
            "member,member_type,role,aliases\na,user,developer,\nq,user,admin,\n",
            "r",
        )
        .unwrap();
        let mut a = Adoption::new(&roster, true, day("2026-03-02"));
        // a active on 02-01, 02-20, 03-01; b on 02-25 and 03-02; q never.
        a.add_month(&rows(&[
            ("2026-02-01", "a", 1),
            ("2026-02-20", "a", 2),
            ("2026-02-25", "b", 4),
        ]))
        .unwrap();
        a.add_month(&rows(&[("2026-03-01", "a", 8), ("2026-03-02", "b", 16)]))
            .unwrap();
        let (daily, members) = a.finish().unwrap();
        assert_eq!(daily.height(), 5);
        assert_eq!(ints(&daily, c::ACTIVE_USERS), [1, 1, 1, 1, 1].map(Some));
        // 7 days ending 02-25 = 02-19 … 02-25: a (02-20) and b.
        assert_eq!(ints(&daily, c::ACTIVE_USERS_7D), [1, 1, 2, 2, 2].map(Some));
        // 28 days ending 02-20 = 01-24 … 02-20: a only (counted once though active twice).
        assert_eq!(ints(&daily, c::ACTIVE_USERS_28D), [1, 1, 2, 2, 2].map(Some));
        assert_eq!(ints(&daily, c::NEW_USERS), [1, 0, 1, 0, 0].map(Some));
        assert_eq!(ints(&daily, c::ROSTER_MEMBERS), [2; 5].map(Some));
        assert_eq!(ints(&daily, c::ROSTER_ACTIVE_28D), [1; 5].map(Some));
        let names: Vec<_> = members
            .column(c::MEMBER)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert_eq!(names, ["a", "b", "q"]);
        // 28 days ending 03-02 = 02-03 … 03-02: a on 02-20 and 03-01 (02-01 is outside).
        assert_eq!(
            ints(&members, c::ACTIVE_DAYS_28D),
            [Some(2), Some(2), Some(0)]
        );
        let spend: Vec<f64> = members
            .column(c::SPEND_USD_28D)
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(spend, [10.0 / PICO_PER_USD, 20.0 / PICO_PER_USD, 0.0]);
        let first = members
            .column(c::FIRST_ACTIVE)
            .unwrap()
            .cast(&DataType::Int32)
            .unwrap();
        let first: Vec<Option<i32>> = first.i32().unwrap().iter().collect();
        assert_eq!(
            first,
            [Some(day("2026-02-01")), Some(day("2026-02-25")), None]
        );
        let in_roster: Vec<bool> = members
            .column(c::IN_ROSTER)
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert_eq!(in_roster, [true, false, true]);
        let role: Vec<Option<&str>> = members
            .column(c::ROLE)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(role, [Some("developer"), None, Some("admin")]);
    }

    #[test]
    fn without_a_roster_the_roster_columns_are_null() {
        let mut a = Adoption::new(&Roster::default(), false, day("2026-02-01"));
        a.add_month(&rows(&[("2026-02-01", "a", 1)])).unwrap();
        let (daily, _) = a.finish().unwrap();
        assert_eq!(ints(&daily, c::ROSTER_MEMBERS), [None]);
        assert_eq!(ints(&daily, c::ROSTER_ACTIVE_28D), [None]);
    }
}
