//! Role policy (contract 5.3): which tables each role may see, and which columns it sees
//! pseudonymised.

pub mod redact;

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::schema::{table, ANALYTICS_ROLES, ROLES};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    pseudonym_key_env: Option<String>,
    #[serde(default)]
    roles: BTreeMap<String, RoleFile>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    pseudonymise: Vec<String>,
    #[serde(default)]
    drop: Vec<String>,
}

impl RoleFile {
    /// A role's entry checked: a known role, known tables (`"*"`: all) in the order of
    /// `table::ALL`, only `member` pseudonymised, droppable columns.
    fn access(&self, role: &str) -> std::result::Result<RoleAccess, String> {
        if !ROLES.contains(&role) {
            return Err(format!(
                "unknown role {role:?} (one of {})",
                ROLES.join(", ")
            ));
        }
        let mut tables = Vec::new();
        for t in &self.tables {
            if t == "*" {
                tables = table::ALL.to_vec();
                break;
            }
            match table::ALL.iter().find(|x| **x == t) {
                Some(x) => tables.push(*x),
                None => {
                    return Err(format!(
                        "role {role}: unknown table {t:?} (one of {}, or \"*\")",
                        table::ALL.join(", ")
                    ))
                }
            }
        }
        tables.sort_by_key(|t| table::ALL.iter().position(|x| x == t));
        tables.dedup();
        for p in &self.pseudonymise {
            if p != crate::schema::col::MEMBER {
                return Err(format!(
                    "role {role}: only \"member\" can be pseudonymised, not {p:?}"
                ));
            }
        }
        let mut drop = Vec::new();
        for d in &self.drop {
            match crate::schema::col::DROPPABLE.iter().find(|x| **x == d) {
                Some(x) => drop.push(*x),
                None => {
                    return Err(format!(
                        "role {role}: cannot drop column {d:?} (one of {})",
                        crate::schema::col::DROPPABLE.join(", ")
                    ))
                }
            }
        }
        drop.sort_unstable();
        drop.dedup();
        Ok(RoleAccess {
            tables,
            pseudonymise_member: !self.pseudonymise.is_empty(),
            drop,
        })
    }
}

/// The pseudonym key from the variable `var`: set, and long enough. Messages name the
/// variable and the length, never the key.
fn pseudonym_key(
    var: &str,
    env: impl Fn(&str) -> Option<String>,
) -> std::result::Result<Vec<u8>, String> {
    let hint = "generate one with: openssl rand -hex 32";
    let k = env(var)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| format!("pseudonym key variable {var} is not set or empty ({hint})"))?;
    if k.len() < MIN_KEY_BYTES {
        return Err(format!(
            "the pseudonym key in {var} has {} bytes, fewer than {MIN_KEY_BYTES} ({hint})",
            k.len()
        ));
    }
    Ok(k.into_bytes())
}

/// What one role may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAccess {
    pub tables: Vec<&'static str>,
    pub pseudonymise_member: bool,
    /// Columns left out of every table of this role (contract 5.3 `drop`), sorted.
    pub drop: Vec<&'static str>,
}

/// Shortest pseudonym key accepted: with fewer bytes, one known (member, pseudonym) pair lets
/// the key be searched for offline.
pub const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, Clone)]
pub struct Policy {
    roles: BTreeMap<String, RoleAccess>,
    /// HMAC key for pseudonyms, read from the environment when the policy is loaded.
    key: Option<Vec<u8>>,
}

impl Policy {
    /// The built-in policy: the five analytics roles see every table; the others nothing.
    pub fn builtin() -> Policy {
        Policy {
            roles: ANALYTICS_ROLES
                .iter()
                .map(|r| {
                    (
                        r.to_string(),
                        RoleAccess {
                            tables: table::ALL.to_vec(),
                            pseudonymise_member: false,
                            drop: Vec::new(),
                        },
                    )
                })
                .collect(),
            key: None,
        }
    }

    /// Parses a policy file; `env` looks up environment variables (the pseudonym key).
    pub fn parse(text: &str, source: &str, env: impl Fn(&str) -> Option<String>) -> Result<Policy> {
        let bad = |m: String| Error::usage(format!("policy {source}: {m}"));
        let f: PolicyFile = toml::from_str(text)
            .map_err(|e| bad(e.to_string().replace('\n', " ").trim().to_string()))?;
        let mut roles = BTreeMap::new();
        for (role, rf) in f.roles {
            let access = rf.access(&role).map_err(bad)?;
            roles.insert(role, access);
        }
        let key = if roles.values().any(|a| a.pseudonymise_member) {
            let var = f.pseudonym_key_env.ok_or_else(|| {
                bad("a role pseudonymises but pseudonym_key_env is not set".into())
            })?;
            Some(pseudonym_key(&var, env).map_err(bad)?)
        } else {
            None
        };
        Ok(Policy { roles, key })
    }

    pub fn access(&self, role: &str) -> Option<&RoleAccess> {
        self.roles.get(role).filter(|a| !a.tables.is_empty())
    }

    /// Every role that may see at least one table, in the contract's role order.
    pub fn visible_roles(&self) -> Vec<String> {
        ROLES
            .iter()
            .filter(|r| self.access(r).is_some())
            .map(|r| r.to_string())
            .collect()
    }

    /// The roles to write: `requested`, or every visible role. A requested role that may see
    /// nothing is a permission error.
    pub fn select_roles(&self, requested: Option<&[String]>) -> Result<Vec<String>> {
        match requested {
            None => Ok(self.visible_roles()),
            Some(req) => {
                for r in req {
                    if self.access(r).is_none() {
                        return Err(Error::Permission(format!(
                            "role {r:?} may see no analytics table under this policy"
                        )));
                    }
                }
                let mut v: Vec<String> = req.to_vec();
                v.dedup();
                Ok(v)
            }
        }
    }

    /// `m_` + the first 16 hex digits of HMAC-SHA256(key, member).
    pub fn pseudonym(&self, member: &str) -> String {
        let key = self
            .key
            .as_deref()
            .expect("a pseudonymising policy has a key");
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(member.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("m_{}", &hex::encode(digest)[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAST: &str = r#"
pseudonym_key_env = "K"
[roles.admin]
tables = ["*"]
[roles.billing]
tables = ["daily_spend", "daily_spend_by_model", "member_monthly"]
[roles.developer]
tables = ["daily_activity", "member_monthly"]
pseudonymise = ["member"]
"#;

    #[test]
    fn builtin_policy_lets_five_roles_see_everything() {
        let p = Policy::builtin();
        assert_eq!(p.visible_roles(), ANALYTICS_ROLES.to_vec());
        assert_eq!(
            p.access("developer").unwrap().tables.len(),
            table::ALL.len()
        );
        assert!(p.access("user").is_none());
        let e = p.select_roles(Some(&["user".to_string()])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn least_privilege_policy() {
        let p = Policy::parse(LEAST, "p.toml", |_| Some(KEY.into())).unwrap();
        assert_eq!(p.visible_roles(), vec!["billing", "admin", "developer"]);
        assert_eq!(
            p.access("billing").unwrap().tables,
            vec!["daily_spend", "daily_spend_by_model", "member_monthly"]
        );
        assert!(p.access("developer").unwrap().pseudonymise_member);
        assert!(p.access("owner").is_none());
        // HMAC-SHA256(KEY, "alice@example.com"), computed independently with Python's hmac.
        assert_eq!(p.pseudonym("alice@example.com"), "m_841240d2a5b6654b");
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn short_keys_are_refused_without_showing_them() {
        let e = Policy::parse(LEAST, "p.toml", |_| Some("sixteen-byte-key".into())).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let m = e.to_string();
        assert!(m.contains("16 bytes") && m.contains("openssl rand"), "{m}");
        assert!(!m.contains("sixteen-byte-key"), "the key is not shown: {m}");
        let k31 = &KEY[..31];
        assert!(Policy::parse(LEAST, "p.toml", |_| Some(k31.into())).is_err());
        assert!(Policy::parse(LEAST, "p.toml", |_| Some(KEY.into())).is_ok());
    }

    #[test]
    fn drop_names_known_columns() {
        let text = format!("{LEAST}drop = [\"role\", \"role\"]\n");
        let p = Policy::parse(&text, "p.toml", |_| Some(KEY.into())).unwrap();
        assert_eq!(p.access("developer").unwrap().drop, vec!["role"]);
        assert!(p.access("admin").unwrap().drop.is_empty());
        let text = format!("{LEAST}drop = [\"salary\"]\n");
        let e = Policy::parse(&text, "p.toml", |_| Some(KEY.into())).unwrap_err();
        assert!(e.to_string().contains("salary"), "{e}");
    }

    #[test]
    fn pseudonymising_without_key_is_refused() {
        let e = Policy::parse(LEAST, "p.toml", |_| None).unwrap_err();
        assert!(e.to_string().contains("K"), "{e}");
        let e =
            Policy::parse("[roles.admin]\ntables=[\"nope\"]\n", "p.toml", |_| None).unwrap_err();
        assert!(e.to_string().contains("nope"));
    }
}
