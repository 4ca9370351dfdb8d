//! The tables' rows of each month, kept under the state root (`_tables/month=YYYY-MM/`) with a
//! fingerprint of what they were built from: the month's fact files (paths, sizes, etags), the
//! roster and the layout of the tables. A run rebuilds only the months whose fingerprint
//! changed (those it recomputed dates of, or all after a roster change) and reads the others'
//! rows as they are, so that a nightly run's cost does not grow with the years stored.

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::roster::Roster;
use crate::error::{Error, Result};
use crate::schema::table;
use crate::sink::parquet_bytes;
use crate::source::Location;

/// Bumped whenever the tables' computation changes: older months are then rebuilt.
const TABLES_LAYOUT: u32 = 2;

fn dir(month: (i32, u32)) -> String {
    format!("_tables/month={:04}-{:02}", month.0, month.1)
}

/// Where a month's kept encodings are (see `kept`).
fn kept_dir(month: (i32, u32)) -> String {
    format!("{}/_csv", dir(month))
}

/// One kept encoding of a month's rows in one form (see `kept`).
fn kept_path(
    state: &Location,
    month: (i32, u32),
    key: &str,
    ext: Encoded,
) -> object_store::path::Path {
    state.child(&format!("{}/{key}.{}", kept_dir(month), ext.ext()))
}

/// A stored date and its fact files.
pub type DateFiles = (chrono::NaiveDate, Vec<object_store::ObjectMeta>);
/// A month: (year, month).
pub type Month = (i32, u32);

/// The stored dates' fact files, by month, in order.
pub async fn stored(state: &Location) -> Result<std::collections::BTreeMap<Month, Vec<DateFiles>>> {
    use chrono::Datelike;
    let mut by_month: std::collections::BTreeMap<Month, Vec<DateFiles>> = Default::default();
    for (d, files) in crate::facts::store::stored_dates(state).await? {
        by_month
            .entry((d.year(), d.month()))
            .or_default()
            .push((d, files));
    }
    Ok(by_month)
}

/// What the rows of the month of `dates` depend on (see `fingerprint`).
pub fn fingerprint_of(
    dates: &[DateFiles],
    roster: &Roster,
    dims: &crate::config::dimensions::Dimensions,
) -> String {
    let files: Vec<object_store::ObjectMeta> =
        dates.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
    fingerprint(&files, roster, dims)
}

/// What a month's rows depend on.
pub fn fingerprint(
    facts: &[object_store::ObjectMeta],
    roster: &Roster,
    dims: &crate::config::dimensions::Dimensions,
) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "layout {TABLES_LAYOUT} {}\ndimensions {}\n",
        env!("CARGO_PKG_VERSION"),
        dims.describe()
    ));
    let mut files: Vec<String> = facts
        .iter()
        .map(|m| {
            format!(
                "{} {} {}",
                m.location,
                m.size,
                m.e_tag.as_deref().unwrap_or("")
            )
        })
        .collect();
    files.sort();
    for f in files {
        h.update(f.as_bytes());
        h.update(b"\n");
    }
    for m in &roster.members {
        h.update(format!("{}\t{}\t{}", m.member, m.member_type, m.role).as_bytes());
        // The roster columns the dimensions read.
        for (_, column) in dims.roster_columns() {
            let v = roster.column(column).map_or("", |i| m.extra[i].as_str());
            h.update(format!("\t{v}").as_bytes());
        }
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The month's stored rows, when they were built from what `fp` describes (streamed tables' rows
/// empty: they are read when written).
pub async fn load(
    state: &Location,
    month: (i32, u32),
    fp: &str,
) -> Result<Option<Vec<(&'static str, DataFrame)>>> {
    let Ok(stored) = state
        .get(&state.child(&format!("{}/_fingerprint", dir(month))))
        .await
    else {
        return Ok(None);
    };
    if stored.as_ref() != fp.as_bytes() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for name in STORED {
        // A streamed table's rows are read when they are written, a month at a time.
        let rows = if STREAMED.contains(&name) {
            DataFrame::empty()
        } else {
            part(state, month, name).await?
        };
        out.push((name, rows));
    }
    Ok(Some(out))
}

/// Keeps the month's rows; the fingerprint goes last, so that rows cut short by a stop are
/// never taken for whole ones.
pub async fn save(
    state: &Location,
    month: (i32, u32),
    fp: &str,
    tables: &[(&'static str, DataFrame)],
) -> Result<()> {
    if tables.iter().map(|(n, _)| *n).ne(STORED) {
        return Err(Error::Other("tables out of order".into()));
    }
    // The encodings of the rows replaced: none may outlive them.
    for old in state.list_all(&state.child(&kept_dir(month))).await? {
        state.delete(&old.location).await?;
    }
    for ((name, _), bytes) in tables.iter().zip(encoded(tables)?) {
        state.put(&part_path(state, month, name), bytes).await?;
    }
    state
        .put(
            &state.child(&format!("{}/_fingerprint", dir(month))),
            fp.as_bytes().to_vec(),
        )
        .await
}

/// Each table's rows as Parquet, on two threads (a rebuilt month's rows are encoded while the
/// run waits: a second or more for a large organisation's per-member tables).
fn encoded(tables: &[(&'static str, DataFrame)]) -> Result<Vec<Vec<u8>>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    // Takes the next table not yet taken until none is left; returns what it encoded.
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((name, df)) = tables.get(i) else {
                return done;
            };
            done.push((i, parquet_bytes(&mut df.clone(), name, None)));
        }
    };
    let mut done = std::thread::scope(|scope| {
        let other = scope.spawn(work);
        let mut done = work();
        done.extend(other.join().expect("the encoder does not panic"));
        done
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, bytes)| bytes).collect()
}

/// Tables whose rows grow with members × dates: written month by month from the stored rows,
/// never held whole.
pub const STREAMED: [&str; 3] = [
    table::MEMBER_DAILY,
    table::MEMBER_DAILY_BY_TOOL,
    table::MEMBER_DAILY_BY_MODEL,
];

/// What a month keeps: its rows of every per-month table, then the internal per-member rows.
pub const STORED: [&str; 12] = crate::schema::join(table::MONTHLY, [table::MEMBER_DAYS]);

/// A month of a streamed table: which one, and the fingerprint its stored rows were built from.
#[derive(Clone, Debug)]
pub struct MonthRows {
    pub month: (i32, u32),
    pub fingerprint: String,
}

/// A table's rows: whole in memory, or a streamed table's months (read when written).
pub enum Rows {
    Whole(DataFrame),
    Months(Vec<MonthRows>),
}

/// The two kept encodings of a form of a streamed table's month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// Its CSV rows, without the header line, zstd-compressed: decompressed into the table's
    /// CSV file (a nightly run reads a year of them back: a quarter of the bytes, and the
    /// disk is what such a copy waits for).
    Csv,
    /// A Parquet file of its rows alone (`sink::ParquetParts::alone`): its pages are copied
    /// into the table's Parquet file.
    Parquet,
}

impl Encoded {
    fn ext(self) -> &'static str {
        match self {
            Encoded::Csv => "csv.zst",
            Encoded::Parquet => "parquet",
        }
    }
}

/// One form of a streamed table's month, encoded and kept beside the month's rows under
/// `_csv/`: a nightly run encodes only the months it rebuilt and copies the others' bytes,
/// which are the same bytes encoding them again would give. `key` names the month's
/// fingerprint, the table and the form (see `publish::folders`); a rebuilt month has a new
/// fingerprint, and `save` removes its old encodings.
pub async fn kept(
    state: &Location,
    month: (i32, u32),
    key: &str,
    ext: Encoded,
) -> Option<bytes::Bytes> {
    state.get(&kept_path(state, month, key, ext)).await.ok()
}

/// Keeps one encoding of one form of a month (see `kept`).
pub async fn keep(
    state: &Location,
    month: (i32, u32),
    key: &str,
    ext: Encoded,
    bytes: bytes::Bytes,
) -> Result<()> {
    state.put(&kept_path(state, month, key, ext), bytes).await
}

/// Where one month's stored rows of table `name` are.
fn part_path(state: &Location, month: Month, name: &str) -> object_store::path::Path {
    state.child(&format!("{}/{name}.parquet", dir(month)))
}

/// The Parquet file of one month's stored rows of table `name`.
async fn part_bytes(state: &Location, month: Month, name: &str) -> Result<bytes::Bytes> {
    state.get(&part_path(state, month, name)).await
}

/// The columns of one month's stored rows of table `name`, without the rows.
pub async fn columns(state: &Location, month: (i32, u32), name: &str) -> Result<DataFrame> {
    let bytes = part_bytes(state, month, name).await?;
    Ok(ParquetReader::new(std::io::Cursor::new(bytes))
        .with_slice(Some((0, 0)))
        .finish()?)
}

/// Removes every kept encoding of the months of `used` but those of the keys it names (the
/// encodings of an older version of this job, or of a form no role has any more, would
/// otherwise stay forever beside months that are never rebuilt).
pub async fn sweep_kept(state: &Location, used: &[(Month, String)]) -> Result<()> {
    let mut by_month: std::collections::BTreeMap<Month, Vec<&str>> = Default::default();
    for (m, key) in used {
        by_month.entry(*m).or_default().push(key);
    }
    for (month, keys) in by_month {
        for old in state.list_all(&state.child(&kept_dir(month))).await? {
            let name = old.location.filename().unwrap_or_default();
            let key = name.split_once('.').map_or(name, |(k, _)| k);
            if !keys.contains(&key) {
                state.delete(&old.location).await?;
            }
        }
    }
    Ok(())
}

/// The rows of dates `first` … `last` of one month's stored rows of table `name` (whose rows
/// are sorted by date): only the date column is decoded whole, then the row groups that hold
/// those rows (the export of a nightly run needs one day of a month of per-member rows).
pub async fn part_of_dates(
    state: &Location,
    month: Month,
    name: &str,
    (first, last): (chrono::NaiveDate, chrono::NaiveDate),
) -> Result<DataFrame> {
    let bytes = part_bytes(state, month, name).await?;
    let dates = ParquetReader::new(std::io::Cursor::new(bytes.clone()))
        .with_columns(Some(vec![crate::schema::col::DATE.to_string()]))
        .finish()?;
    let days = dates
        .column(crate::schema::col::DATE)?
        .cast(&DataType::Int32)?;
    let days: Vec<i32> = days.i32()?.into_no_null_iter().collect();
    let whole = ParquetReader::new(std::io::Cursor::new(bytes.clone()));
    if !days.is_sorted() {
        return Ok(whole.finish()?);
    }
    let day = |d: chrono::NaiveDate| crate::facts::days_since_epoch(d);
    let from = days.partition_point(|&d| d < day(first));
    let to = days.partition_point(|&d| d <= day(last));
    Ok(whole.with_slice(Some((from, to - from))).finish()?)
}

/// One month's stored rows of table `name`.
pub async fn part(state: &Location, month: (i32, u32), name: &str) -> Result<DataFrame> {
    let bytes = part_bytes(state, month, name).await?;
    Ok(ParquetReader::new(std::io::Cursor::new(bytes)).finish()?)
}
