//! The role folders: each table in the form each role may see it (pseudonymised, columns
//! dropped), encoded once per form, and each role's dashboard from its own tables.

use polars::prelude::*;

use crate::config::RunConfig;
use crate::dashboard;
use crate::error::Result;
use crate::manifest::{Manifest, OutputFile};
use crate::policy::Policy;
use crate::publish::Publisher;
use crate::schema::col as c;
use crate::sink::{csv_bytes, parquet_bytes};

/// Replaces `member` by its pseudonym in a table that has the column, and sorts the rows by the
/// values written (contract 5.2): rows in the order of the real identities would let anyone who
/// knows the sorted roster (or can read another role's folder) undo the pseudonyms.
fn pseudonymise(df: &DataFrame, policy: &Policy) -> Result<DataFrame> {
    let Ok(col) = df.column(c::MEMBER) else {
        return Ok(df.clone());
    };
    let names: Vec<Option<String>> = col
        .as_materialized_series()
        .str()?
        .iter()
        .map(|m| m.map(|m| policy.pseudonym(m)))
        .collect();
    let mut out = df.clone();
    out.with_column(Column::new(c::MEMBER.into(), names))?;
    // The leading column (date or month), the member, then the other key columns present.
    let names: Vec<&str> = out.get_column_names().iter().map(|n| n.as_str()).collect();
    let mut by: Vec<&str> = vec![names[0], c::MEMBER];
    by.extend(
        [c::MEMBER_TYPE, c::TOOL, c::MODEL]
            .into_iter()
            .filter(|k| names.contains(k)),
    );
    let by: Vec<String> = by.into_iter().map(String::from).collect();
    drop(names);
    Ok(out.sort(by, SortMultipleOptions::default().with_maintain_order(true))?)
}

/// How one role sees a table: pseudonymised or not, and which of its columns are left out.
#[derive(PartialEq, Eq, Clone)]
struct Form {
    pseudonymised: bool,
    drop: Vec<&'static str>,
}

impl Form {
    fn of(access: &crate::policy::RoleAccess, df: &DataFrame) -> Form {
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        Form {
            pseudonymised: access.pseudonymise_member && names.contains(&c::MEMBER),
            drop: access
                .drop
                .iter()
                .copied()
                .filter(|d| names.contains(d))
                .collect(),
        }
    }

    fn apply(&self, df: &DataFrame, policy: &Policy) -> Result<DataFrame> {
        let df = if self.pseudonymised {
            pseudonymise(df, policy)?
        } else {
            df.clone()
        };
        Ok(df.drop_many(self.drop.iter().copied()))
    }
}

/// Stages `reports/<role>/` for every role: its tables and dashboard.
pub async fn stage(
    cfg: &RunConfig,
    policy: &Policy,
    roles: &[String],
    tables: &[(&'static str, DataFrame)],
    publisher: &mut Publisher,
    manifest: &mut Manifest,
) -> Result<()> {
    let built_at = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    // Each table is encoded once per form (as is, or pseudonymised) and the same bytes are
    // staged for every role that sees that form: roles share most tables.
    let access: Vec<_> = roles
        .iter()
        .map(|r| policy.access(r).expect("selected roles may see something"))
        .collect();
    let mut visible: Vec<Vec<(&'static str, DataFrame)>> = vec![Vec::new(); roles.len()];
    for (name, df) in tables {
        let forms: Vec<Option<Form>> = access
            .iter()
            .map(|a| a.tables.contains(name).then(|| Form::of(a, df)))
            .collect();
        let mut done: Vec<&Form> = Vec::new();
        for form in forms.iter().flatten() {
            if done.contains(&form) {
                continue;
            }
            done.push(form);
            let who: Vec<usize> = (0..roles.len())
                .filter(|&i| forms[i].as_ref() == Some(form))
                .collect();
            let mut df = form.apply(df, policy)?;
            let rows = df.height() as u64;
            let encoded = [
                ("parquet", parquet_bytes(&mut df, name)?),
                ("csv", csv_bytes(&mut df)?),
            ];
            for &i in &who {
                for (ext, bytes) in &encoded {
                    let rel = format!("reports/{}/{name}.{ext}", roles[i]);
                    manifest.outputs.push(OutputFile {
                        path: rel.clone(),
                        rows,
                        bytes: bytes.len() as u64,
                    });
                    publisher.stage(&rel, bytes.clone()).await?;
                }
                visible[i].push((name, df.clone()));
            }
        }
    }
    if cfg.dashboard {
        for (role, visible) in roles.iter().zip(&visible) {
            // Built from this role's own (filtered, pseudonymised) tables only.
            let html = dashboard::render(role, visible, cfg.tz.name(), &built_at)?;
            let rel = format!("reports/{role}/dashboard.html");
            manifest.outputs.push(OutputFile {
                path: rel.clone(),
                rows: 0,
                bytes: html.len() as u64,
            });
            publisher.stage(&rel, html.into_bytes()).await?;
        }
    }
    Ok(())
}
