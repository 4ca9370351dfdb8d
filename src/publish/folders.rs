//! The role folders: each table in the form each role may see it (pseudonymised, columns
//! dropped), encoded once per form, and each role's dashboard from its own tables.

use polars::prelude::*;

use super::carry::{self, Carried, FormFiles};
use super::{Carry, Publisher};
use crate::config::RunConfig;
use crate::error::Result;
use crate::manifest::{Manifest, OutputFile};
use crate::policy::{Policy, RoleAccess};
use crate::reports::dashboard;
use crate::reports::export;
use crate::reports::months::{self, MonthRows, Rows};
use crate::schema::{col as c, table};
use crate::sink::{csv_bytes, csv_part, parquet_bytes, ParquetParts};
use crate::source::Location;

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
    let mut by: Vec<&str> = vec![names[0]];
    if names[0] != c::MEMBER {
        by.push(c::MEMBER);
    }
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
pub(super) struct Form {
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

    /// The name of a month's kept encodings of table `name` in this form: a hash of the month's
    /// fingerprint, the table, the form and (pseudonymised) the key's own pseudonym, so that
    /// rows rebuilt, another form or another key never find another's bytes.
    pub(super) fn kept_key(&self, name: &str, month: &MonthRows, policy: &Policy) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(format!(
            "csv-rows-2\n{}\n{name}\n{}\n{}\n",
            month.fingerprint,
            self.drop.join(","),
            if self.pseudonymised {
                policy.pseudonym("cc-analytics: the key of these rows")
            } else {
                String::new()
            }
        ));
        format!("{name}-{}", &hex::encode(h.finalize())[..16])
    }

    pub(super) fn apply(&self, df: &DataFrame, policy: &Policy) -> Result<DataFrame> {
        let df = if self.pseudonymised {
            pseudonymise(df, policy)?
        } else {
            df.clone()
        };
        Ok(df.drop_many(self.drop.iter().copied()))
    }
}

/// Stages `reports/<role>/` for every role: its tables and dashboard, the streamed tables'
/// months that `carry` copied early taken as they are where they still hold.
#[allow(clippy::too_many_arguments)]
pub async fn stage(
    cfg: &RunConfig,
    policy: &Policy,
    roles: &[String],
    tables: &[(&'static str, Rows)],
    export_dates: &[chrono::NaiveDate],
    state: &Location,
    carry: Carry,
    publisher: &mut Publisher,
    manifest: &mut Manifest,
) -> Result<()> {
    let built_at = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let access: Vec<_> = roles
        .iter()
        .map(|r| policy.access(r).expect("selected roles may see something"))
        .collect();
    // The export reads only the stored months: staged first, while the early copying ends
    // (its files are listed in the manifest after the tables', as they always were).
    let t = std::time::Instant::now();
    let mut export_outputs = Vec::new();
    let export = ExportTo {
        publisher: &mut *publisher,
        outputs: &mut export_outputs,
    };
    stage_export(cfg, policy, roles, &access, export_dates, state, export).await?;
    tracing::debug!("the export in {:.2}s", t.elapsed().as_secs_f64());
    let wait = std::time::Instant::now();
    let mut carried = carry.take().await;
    tracing::debug!(
        "waited {:.2}s for the months copied early",
        wait.elapsed().as_secs_f64()
    );
    let mut visible: Vec<Vec<(&'static str, DataFrame)>> = vec![Vec::new(); roles.len()];
    // The kept encodings written or copied, by month: the others are removed.
    let mut used: Vec<(months::Month, String)> = Vec::new();
    for (name, rows) in tables {
        let out = Out {
            roles,
            access: &access,
            policy,
            publisher: &mut *publisher,
            manifest: &mut *manifest,
        };
        match rows {
            Rows::Whole(df) => {
                for (i, df) in stage_whole(name, df, out).await? {
                    visible[i].push((name, df));
                }
            }
            Rows::Months(months) => {
                used.extend(stage_months(name, months, state, out, &mut carried).await?);
            }
        }
    }
    for c in carried {
        c.files.abort().await;
    }
    // Only a run that writes every role's folder knows every form still in use: a run for some
    // roles must not remove the others' encodings (the next run would encode them all again).
    let mut every_role = policy.visible_roles();
    every_role.sort();
    let mut written = roles.to_vec();
    written.sort();
    written.dedup();
    if written == every_role {
        months::sweep_kept(state, &used).await?;
    }
    manifest.outputs.append(&mut export_outputs);
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

/// Where the export's files go: the run's staging, and their manifest entries.
struct ExportTo<'a> {
    publisher: &'a mut Publisher,
    outputs: &'a mut Vec<OutputFile>,
}

/// The API-shaped export (contract 5.6) of `dates` (those with activity), for the roles that
/// may see `member_daily`, each in its form of that table (pseudonymised, columns dropped).
async fn stage_export(
    cfg: &RunConfig,
    policy: &Policy,
    roles: &[String],
    access: &[&RoleAccess],
    dates: &[chrono::NaiveDate],
    state: &Location,
    to: ExportTo<'_>,
) -> Result<()> {
    use chrono::{Datelike, NaiveDate};
    let who: Vec<usize> = (0..roles.len())
        .filter(|&i| access[i].tables.contains(&table::MEMBER_DAILY))
        .collect();
    let mut dates: Vec<NaiveDate> = dates.to_vec();
    dates.sort();
    dates.dedup();
    if who.is_empty() || dates.is_empty() {
        return Ok(());
    }
    let mut months: Vec<(i32, u32)> = dates.iter().map(|d| (d.year(), d.month())).collect();
    months.dedup();
    let names = [
        table::MEMBER_DAILY,
        table::MEMBER_DAILY_BY_TOOL,
        table::MEMBER_DAILY_BY_MODEL,
        table::MEMBER_DAYS,
    ];
    for month in months {
        let of_month: Vec<NaiveDate> = dates
            .iter()
            .copied()
            .filter(|d| (d.year(), d.month()) == month)
            .collect();
        let span = (of_month[0], of_month[of_month.len() - 1]);
        let mut rows = Vec::new();
        for name in names {
            match months::part_of_dates(state, month, name, span).await {
                Ok(df) => rows.push((name, df)),
                // A recomputed month without stored rows has no activity left to export.
                Err(_) if rows.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        if rows.len() < names.len() {
            continue;
        }
        let member_daily = rows[0].1.clear();
        let by_date = export::entries(&rows, &dates)?;
        drop(rows);
        let forms = forms_of(table::MEMBER_DAILY, &member_daily, access);
        for (form, readers) in forms {
            let readers: Vec<usize> = readers.into_iter().filter(|i| who.contains(i)).collect();
            if readers.is_empty() {
                continue;
            }
            let name = |m: &str| {
                if form.pseudonymised {
                    policy.pseudonym(m)
                } else {
                    m.to_string()
                }
            };
            let view = export::View {
                name: &name,
                dropped: &form.drop,
            };
            let days: Vec<_> = by_date.iter().collect();
            for some in days.chunks(export::pages_at_once()) {
                for (d, rows, bytes) in export::pages(some, cfg.tz, &view) {
                    for &i in &readers {
                        let rel = format!("reports/{}/claude_code_usage/{d}.json", roles[i]);
                        to.outputs.push(OutputFile {
                            path: rel.clone(),
                            rows: rows as u64,
                            bytes: bytes.len() as u64,
                        });
                        to.publisher.stage(&rel, bytes.clone()).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Where a table's files go: the roles, what each may see, and the run's staging and manifest.
struct Out<'a> {
    roles: &'a [String],
    access: &'a [&'a RoleAccess],
    policy: &'a Policy,
    publisher: &'a mut Publisher,
    manifest: &'a mut Manifest,
}

/// Where a role's file of table `name` is published (`ext`: parquet or csv).
fn table_rel(role: &str, name: &str, ext: &str) -> String {
    format!("reports/{role}/{name}.{ext}")
}

/// Where a streamed table's two files of one form are staged: those of its first role
/// (Parquet, CSV); the form's other roles get copies.
pub(super) fn streamed_rels(role: &str, name: &str) -> [String; 2] {
    ["parquet", "csv"].map(|ext| table_rel(role, name, ext))
}

/// The distinct forms of a table among the roles that see it, each with those roles.
pub(super) fn forms_of(
    name: &str,
    columns_of: &DataFrame,
    access: &[&RoleAccess],
) -> Vec<(Form, Vec<usize>)> {
    let mut out: Vec<(Form, Vec<usize>)> = Vec::new();
    for (i, a) in access.iter().enumerate() {
        if !a.tables.contains(&name) {
            continue;
        }
        let form = Form::of(a, columns_of);
        match out.iter_mut().find(|(f, _)| *f == form) {
            Some((_, who)) => who.push(i),
            None => out.push((form, vec![i])),
        }
    }
    out
}

/// A table held whole: each form encoded once (roles share most tables), its bytes staged for
/// every role of that form. Returns each role's form of it (for the dashboards).
async fn stage_whole(
    name: &'static str,
    df: &DataFrame,
    out: Out<'_>,
) -> Result<Vec<(usize, DataFrame)>> {
    let mut seen = Vec::new();
    for (form, who) in forms_of(name, df, out.access) {
        let mut df = form.apply(df, out.policy)?;
        let rows = df.height() as u64;
        let encoded = [
            (
                "parquet",
                parquet_bytes(&mut df, name, Some(out.publisher.run_id()))?,
            ),
            ("csv", csv_bytes(&mut df)?),
        ];
        for &i in &who {
            for (ext, bytes) in &encoded {
                let rel = table_rel(&out.roles[i], name, ext);
                out.manifest.outputs.push(OutputFile {
                    path: rel.clone(),
                    rows,
                    bytes: bytes.len() as u64,
                });
                out.publisher.stage(&rel, bytes.clone()).await?;
            }
            seen.push((i, df.clone()));
        }
    }
    Ok(seen)
}

/// A streamed table: for each form, its months appended one at a time to one Parquet and one
/// CSV file (uploaded in parts), staged once and copied in staging for the form's other roles.
/// Each month is encoded once per form and kept (`months::kept`): its CSV rows are copied into
/// the CSV file, its Parquet pages into the Parquet file, so a nightly run encodes only the
/// months it rebuilt, and reads no other month's rows. The months `carried` early into a form's
/// files are taken as they are when they are still the first of the table's. Returns the kept
/// keys of every month it wrote.
async fn stage_months(
    name: &'static str,
    months: &[MonthRows],
    state: &Location,
    out: Out<'_>,
    carried: &mut Vec<Carried>,
) -> Result<Vec<(months::Month, String)>> {
    let mut used = Vec::new();
    let Some(first) = months.first() else {
        return Ok(used);
    };
    let columns_of = months::columns(state, first.month, name).await?;
    for (form, who) in forms_of(name, &columns_of, out.access) {
        let rel = |i: usize, ext: &str| table_rel(&out.roles[i], name, ext);
        let rels = streamed_rels(&out.roles[who[0]], name);
        let keys: Vec<String> = months
            .iter()
            .map(|m| form.kept_key(name, m, out.policy))
            .collect();
        used.extend(months.iter().map(|m| m.month).zip(keys.iter().cloned()));
        let mut files = match carry::resume(carried, name, &form, &keys, &rels).await {
            Some(files) => files,
            None => {
                let shape = (&form, &columns_of, out.policy);
                let run_id = out.publisher.run_id().to_string();
                FormFiles::open((state, &run_id), name, shape, rels, &keys).await?
            }
        };
        out.publisher.adopt(&files.parquet);
        out.publisher.adopt(&files.csv);
        let (early, mut encoded) = (files.keys.len(), 0usize);
        for (month, key) in months.iter().zip(&keys).skip(early) {
            if !files.copy_kept(state, month.month, key).await? {
                encoded += 1;
                files
                    .append_encoded((name, month, key), (&form, out.policy), state)
                    .await?;
            }
        }
        tracing::debug!(
            "{name}: {early} months copied early, {} copied as kept, {encoded} encoded",
            months.len() - early - encoded
        );
        let (pq_size, csv_size, rows) = files.finish().await?;
        for &i in &who {
            for (ext, bytes) in [("parquet", pq_size), ("csv", csv_size)] {
                let to = rel(i, ext);
                if i != who[0] {
                    out.publisher.stage_copy(&rel(who[0], ext), &to).await?;
                }
                out.manifest.outputs.push(OutputFile {
                    path: to,
                    rows,
                    bytes,
                });
            }
        }
    }
    Ok(used)
}

/// One month of a streamed table in one form, encoded: a Parquet file of its rows alone, its
/// CSV rows and those compressed (as kept), the CSV on one core and the Parquet on the other.
/// A frame's clone shares its columns' buffers.
pub(super) async fn encode_month(
    name: &'static str,
    month: &MonthRows,
    form: &Form,
    state: &Location,
    policy: &Policy,
) -> Result<(bytes::Bytes, bytes::Bytes, bytes::Bytes)> {
    let part = months::part(state, month.month, name).await?;
    let mut df = form.apply(&part, policy)?;
    drop(part);
    let mut for_csv = df.clone();
    let (pq, csv) = std::thread::scope(|scope| {
        let csv = scope.spawn(move || {
            let csv = csv_part(&mut for_csv, false)?;
            let kept = zstd::bulk::compress(&csv, KEPT_CSV_LEVEL)
                .map_err(|e| crate::Error::Other(format!("compressing {name}'s rows: {e}")))?;
            Ok::<_, crate::Error>((csv, kept))
        });
        let pq = ParquetParts::alone(&mut df);
        (pq, csv.join().expect("the CSV encoder does not panic"))
    });
    let (csv, kept) = csv?;
    Ok((pq?.into(), csv.into(), kept.into()))
}

/// zstd's fastest level: a month of per-member CSV rows to about a quarter, at several hundred
/// MB/s.
const KEPT_CSV_LEVEL: i32 = 1;
