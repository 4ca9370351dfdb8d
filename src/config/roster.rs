//! The organisation roster (contract 2.2): members, their type and role, and aliases.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::schema::{member_type, ROLES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    pub member: String,
    pub member_type: String,
    pub role: String,
    pub aliases: Vec<String>,
    /// Values of the columns after `aliases` (2.2: member attributes), in `Roster::columns` order.
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Roster {
    pub members: Vec<RosterMember>,
    /// Names of the columns after `aliases`.
    pub columns: Vec<String>,
    /// Alias or member name → index into `members`.
    by_alias: HashMap<String, usize>,
}

impl Roster {
    /// Parses the roster CSV; `source` names it in error messages.
    pub fn parse(text: &str, source: &str) -> Result<Roster> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            // A row may leave out trailing member attributes (empty); more fields is an error.
            .flexible(true)
            .from_reader(text.as_bytes());
        let bad = |msg: String| Error::usage(format!("roster {source}: {msg}"));
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut roster = Roster {
            columns: Self::columns(&header).map_err(bad)?,
            ..Default::default()
        };
        for (i, rec) in rdr.records().enumerate() {
            let line = i + 2;
            let rec = rec.map_err(|e| bad(format!("line {line}: {e}")))?;
            if rec.len() > header.len() {
                return Err(bad(format!(
                    "line {line}: {} fields, the header has {}",
                    rec.len(),
                    header.len()
                )));
            }
            let m = member(&rec, roster.columns.len())
                .and_then(|m| roster.add(m))
                .map_err(|msg| bad(format!("line {line}: {msg}")))?;
            roster.members.push(m);
        }
        Ok(roster)
    }

    /// The member attribute columns: the header after the four fixed ones, each named once.
    fn columns(header: &[String]) -> std::result::Result<Vec<String>, String> {
        if header.len() < 4 || header[..4] != ["member", "member_type", "role", "aliases"] {
            return Err(format!(
                "header must begin member,member_type,role,aliases, found {}",
                header.join(",")
            ));
        }
        let columns: Vec<String> = header[4..].iter().map(|h| h.trim().to_string()).collect();
        if let Some(c) = columns
            .iter()
            .enumerate()
            .find(|(i, c)| c.is_empty() || columns[..*i].contains(c))
        {
            return Err(format!("column {:?} is empty or repeated", c.1));
        }
        Ok(columns)
    }

    /// Claims a new member's name and aliases (none may belong to another member); the member
    /// is the roster's next.
    fn add(&mut self, m: RosterMember) -> std::result::Result<RosterMember, String> {
        // A member's own name is among the aliases claimed, so this finds an earlier member of
        // the same name without a scan of every member.
        if let Some(&o) = self.by_alias.get(&m.member) {
            if self.members[o].member == m.member {
                return Err(format!("duplicate member {:?}", m.member));
            }
        }
        let idx = self.members.len();
        for a in std::iter::once(&m.member).chain(&m.aliases) {
            match self.by_alias.get(a) {
                Some(&o) if o != idx => {
                    return Err(format!(
                        "alias {a:?} is claimed by {:?} and {:?}",
                        self.members[o].member, m.member
                    ))
                }
                _ => {
                    self.by_alias.insert(a.clone(), idx);
                }
            }
        }
        Ok(m)
    }

    /// The index of a column after `aliases`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The member an identity value (email, key name, account uuid, user id) belongs to.
    pub fn lookup(&self, value: &str) -> Option<usize> {
        self.by_alias.get(value).copied()
    }
}

/// A row as a member, its fields checked (`extra`: the member attribute columns).
fn member(rec: &csv::StringRecord, extra: usize) -> std::result::Result<RosterMember, String> {
    let field = |n: usize| rec.get(n).unwrap_or("").to_string();
    let m = RosterMember {
        member: field(0),
        member_type: field(1),
        role: field(2),
        aliases: field(3)
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        extra: (4..4 + extra).map(field).collect(),
    };
    if m.member.is_empty() {
        return Err("empty member".into());
    }
    if m.member_type != member_type::USER && m.member_type != member_type::API_KEY {
        return Err(format!(
            "member_type {:?} is not user or api_key",
            m.member_type
        ));
    }
    if !ROLES.contains(&m.role.as_str()) {
        return Err(format!(
            "unknown role {:?} (one of {})",
            m.role,
            ROLES.join(", ")
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "member,member_type,role,aliases\n\
        alice@example.com,user,developer,acc-1;install-9\n\
        ci-key,api_key,admin,\n";

    #[test]
    fn parses_members_and_aliases() {
        let r = Roster::parse(OK, "r.csv").unwrap();
        assert_eq!(r.members.len(), 2);
        assert_eq!(r.lookup("acc-1"), Some(0));
        assert_eq!(r.lookup("install-9"), Some(0));
        assert_eq!(r.lookup("alice@example.com"), Some(0));
        assert_eq!(r.lookup("ci-key"), Some(1));
        assert_eq!(r.lookup("nobody"), None);
    }

    #[test]
    fn columns_after_aliases_are_member_attributes() {
        let r = Roster::parse(
            "member,member_type,role,aliases,team,cost_center\n\
             a@x,user,developer,,payments,eng-1\n\
             k,api_key,admin,,,\n",
            "r.csv",
        )
        .unwrap();
        assert_eq!(r.columns, ["team", "cost_center"]);
        assert_eq!(r.column("cost_center"), Some(1));
        assert_eq!(r.members[0].extra, ["payments", "eng-1"]);
        assert_eq!(r.members[1].extra, ["", ""]);
        let e = Roster::parse("member,member_type,role,aliases,team,team\n", "r.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("repeated"), "{e}");
        // Trailing attributes may be left out; more fields than the header is refused.
        let r =
            Roster::parse("member,member_type,role,aliases,team\na,user,admin,\n", "r").unwrap();
        assert_eq!(r.members[0].extra, [""]);
        let e = Roster::parse(
            "member,member_type,role,aliases\na,user,admin,,x\n",
            "r.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("5 fields, the header has 4"), "{e}");
    }

    #[test]
    fn rejects_bad_rosters_with_the_culprit_named() {
        let cases = [
            ("member,type,role,aliases\n", "header"),
            ("member,member_type,role,aliases\na,robot,admin,\n", "robot"),
            ("member,member_type,role,aliases\na,user,boss,\n", "boss"),
            (
                "member,member_type,role,aliases\na,user,admin,\na,user,owner,\n",
                "duplicate member",
            ),
            (
                "member,member_type,role,aliases\na,user,admin,x\nb,user,owner,x\n",
                "\"x\"",
            ),
        ];
        for (text, needle) in cases {
            let e = Roster::parse(text, "r.csv").unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should mention {needle}");
            assert!(e.contains("r.csv"));
        }
    }
}
