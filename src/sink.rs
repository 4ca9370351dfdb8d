//! Tables → Parquet and CSV bytes.

use polars::io::parquet::write::KeyValueMetadata;
use polars::prelude::*;

use crate::error::Result;

/// The Arrow schema stored in the file: the contract's types, with strings as plain `Utf8`
/// (polars' own writer would declare its internal string views, which pyarrow and others then
/// surface as `string_view`).
fn arrow_schema_entry(df: &DataFrame) -> (String, String) {
    let schema: ArrowSchema = df
        .schema()
        .iter()
        .map(|(name, dtype)| {
            let arrow = match dtype {
                DataType::String => ArrowDataType::Utf8,
                other => other.to_arrow(CompatLevel::newest()),
            };
            (name.clone(), ArrowField::new(name.clone(), arrow, true))
        })
        .collect();
    let kv = polars_parquet::write::schema_to_metadata_key(&schema);
    (kv.key, kv.value.unwrap_or_default())
}

/// The key-value metadata of a file: the Arrow schema, the table's name and, for published
/// tables, the run that wrote it (`cc_analytics.run_id`: a reader can check that every file it
/// read comes from one run).
fn metadata(df: &DataFrame, table: &str, run_id: Option<&str>) -> KeyValueMetadata {
    let mut kv = vec![
        arrow_schema_entry(df),
        ("cc_analytics.table".to_string(), table.to_string()),
    ];
    if let Some(r) = run_id {
        kv.push((RUN_ID_KEY.to_string(), r.to_string()));
    }
    KeyValueMetadata::from_static(kv)
}

/// The Parquet metadata key that holds the run id of a published table.
pub const RUN_ID_KEY: &str = "cc_analytics.run_id";

/// Parquet with zstd and full column statistics.
pub fn parquet_bytes(df: &mut DataFrame, table: &str, run_id: Option<&str>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
        .with_key_value_metadata(Some(metadata(df, table, run_id)))
        .finish(df)?;
    Ok(buf)
}

/// CSV: header line, RFC 4180 quoting, `.` decimals (at most 6), ISO dates, empty for null.
/// Text cells a spreadsheet would run as a formula are neutralised (contract 5.2).
pub fn csv_bytes(df: &mut DataFrame) -> Result<Vec<u8>> {
    csv_part(df, true)
}

/// The CSV of `df`'s rows, with the header line or without (a later part of one file).
pub fn csv_part(df: &mut DataFrame, header: bool) -> Result<Vec<u8>> {
    let mut safe = neutralised(df)?;
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf)
        .include_header(header)
        .with_float_precision(Some(6))
        .finish(safe.as_mut().unwrap_or(df))?;
    Ok(buf)
}

/// A buffer the Parquet writer writes into and its owner drains as parts are written.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One Parquet file written from parts (of the same schema) in order, the bytes taken as they
/// are produced: a table of any length is encoded a part at a time.
pub struct ParquetParts {
    buf: Shared,
    writer: polars::io::parquet::write::BatchedWriter<Shared>,
}

impl ParquetParts {
    pub fn new(first: &DataFrame, table: &str, run_id: Option<&str>) -> Result<ParquetParts> {
        let buf = Shared::default();
        let writer = ParquetWriter::new(buf.clone())
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::full())
            .with_key_value_metadata(Some(metadata(first, table, run_id)))
            .batched(first.schema())?;
        Ok(ParquetParts { buf, writer })
    }

    /// Encodes `df`'s rows; returns the bytes produced so far.
    pub fn write(&mut self, df: &mut DataFrame) -> Result<Vec<u8>> {
        let chunked = polars::frame::chunk_df_for_writing(df, 512 * 512)?;
        self.writer.write_batch(&chunked)?;
        Ok(self.take())
    }

    /// Ends the file; returns its last bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.writer.finish()?;
        Ok(self.take())
    }

    /// `df`'s rows as a Parquet file of their own, encoded exactly as `write` encodes them: a
    /// month's part of a table, kept, and copied into the table's file by `copy`.
    pub fn alone(df: &mut DataFrame) -> Result<Vec<u8>> {
        let mut p = ParquetParts::new(df, "", None)?;
        let mut bytes = p.write(df)?;
        bytes.extend(p.finish()?);
        Ok(bytes)
    }

    /// Appends the row groups of a file made by `alone`, their pages copied as they are (not
    /// decoded, not encoded again; statistics and page index are rebuilt from the pages'
    /// headers). Returns the bytes produced so far and the rows copied; `None` (nothing
    /// written) when the file's columns are not this file's.
    pub fn copy(&mut self, file: bytes::Bytes) -> Result<Option<(Vec<u8>, u64)>> {
        use polars_parquet::parquet::read::{get_page_iterator, read_metadata};
        use polars_parquet::write::CompressedPage;
        let parquet = |e: polars_parquet::parquet::error::ParquetError| PolarsError::from(e);
        let mut cursor = std::io::Cursor::new(polars_buffer::Buffer::from_owner(file));
        let meta = read_metadata(&mut cursor).map_err(parquet)?;
        // Flat columns only: there a data page's rows are its values (a page read back does not
        // say its rows, which the writer needs).
        let flat = meta
            .schema()
            .columns()
            .iter()
            .all(|c| c.descriptor.max_rep_level == 0);
        if !flat || meta.schema().fields() != self.writer.parquet_schema().fields() {
            return Ok(None);
        }
        for rg in &meta.row_groups {
            let columns = rg
                .parquet_columns()
                .iter()
                .map(|column| {
                    get_page_iterator(column, cursor.clone(), Vec::new(), usize::MAX)?
                        .map(|page| {
                            let mut page = page?;
                            if let CompressedPage::Data(d) = &mut page {
                                d.num_rows = Some(d.num_values());
                            }
                            Ok(page)
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(parquet)?;
            self.writer
                .write_row_group(rg.num_rows() as u64, &columns)?;
        }
        Ok(Some((self.take(), meta.num_rows as u64)))
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.0.lock().expect("not poisoned"))
    }
}

/// Whether a text cell would be taken for a formula: it begins with `=`, `+`, `-`, `@`, a tab or
/// a carriage return, and is not a number (`-3`, `+1.5e3` stay as they are).
pub fn formula_like(s: &str) -> bool {
    matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) && !is_number(s)
}

/// A plain decimal number: optional sign, digits with an optional fraction, optional exponent.
fn is_number(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(b);
    let mut i = int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = digits(&b[i + 1..]);
        i += 1 + frac;
    }
    if int + frac == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let rest = &b[i + 1..];
        let rest = rest
            .strip_prefix(b"+")
            .or(rest.strip_prefix(b"-"))
            .unwrap_or(rest);
        let e = digits(rest);
        return e > 0 && e == rest.len();
    }
    i == b.len()
}

/// The frame with `'` put before every formula-like text cell, or `None` when there is none.
fn neutralised(df: &DataFrame) -> Result<Option<DataFrame>> {
    let mut out: Option<DataFrame> = None;
    for col in df.columns() {
        if col.dtype() != &DataType::String {
            continue;
        }
        let ca = col.as_materialized_series().str()?.clone();
        if !ca.iter().flatten().any(formula_like) {
            continue;
        }
        let fixed: StringChunked = ca
            .iter()
            .map(|v| {
                v.map(|v| {
                    if formula_like(v) {
                        format!("'{v}")
                    } else {
                        v.to_string()
                    }
                })
            })
            .collect();
        let target = out.get_or_insert_with(|| df.clone());
        target.with_column(fixed.with_name(col.name().clone()).into_column())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A month of a per-member table: text with repeats (dictionary pages), nulls, integers,
    /// floats and dates, `n` rows.
    fn month(n: usize, first_day: i32) -> DataFrame {
        let member: Vec<Option<String>> = (0..n)
            .map(|i| (i % 7 != 3).then(|| format!("dev{:03}@example.com", i % 97)))
            .collect();
        let date: Vec<i32> = (0..n).map(|i| first_day + (i / 97) as i32).collect();
        df!(
            "date" => Series::new("date".into(), date).cast(&DataType::Date).unwrap(),
            "member" => member,
            "sessions" => (0..n).map(|i| (i * 31 % 11) as i64).collect::<Vec<_>>(),
            "spend_usd" => (0..n).map(|i| (i % 13) as f64 * 0.37).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn a_file_from_kept_parts_is_the_file_encoded_from_the_rows() {
        let mut parts = [month(3000, 20_000), month(1, 20_031), month(5000, 20_059)];
        let mut encoded = ParquetParts::new(&parts[0], "t", Some("run")).unwrap();
        let mut copied = ParquetParts::new(&parts[0], "t", Some("run")).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut rows = 0;
        for df in &mut parts {
            a.extend(encoded.write(df).unwrap());
            let alone = ParquetParts::alone(df).unwrap();
            let (bytes, n) = copied
                .copy(alone.into())
                .unwrap()
                .expect("the same columns");
            b.extend(bytes);
            rows += n;
        }
        a.extend(encoded.finish().unwrap());
        b.extend(copied.finish().unwrap());
        assert_eq!(rows, 8001);
        assert!(a == b, "the copied file differs from the encoded one");
        let back = ParquetReader::new(std::io::Cursor::new(b))
            .finish()
            .unwrap();
        let whole = parts[0]
            .vstack(&parts[1])
            .unwrap()
            .vstack(&parts[2])
            .unwrap();
        assert!(back.equals_missing(&whole));
    }

    #[test]
    fn a_kept_part_with_other_columns_is_not_copied() {
        let mut other = month(10, 20_000).drop("spend_usd").unwrap();
        let mut copied = ParquetParts::new(&month(10, 20_000), "t", None).unwrap();
        let alone = ParquetParts::alone(&mut other).unwrap();
        assert!(copied.copy(alone.into()).unwrap().is_none());
    }

    #[test]
    fn formula_cells_are_neutralised_and_numbers_kept() {
        for f in [
            "=HYPERLINK(\"x\")",
            "+cmd",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "-",
            "=1",
            "+",
        ] {
            assert!(formula_like(f), "{f:?}");
        }
        for n in [
            "-3", "+1.5", "-0.25e-3", "1e9", "-.5", "plain", "a=b", "", "'=x",
        ] {
            assert!(!formula_like(n), "{n:?}");
        }
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("member".into(), ["=HYPERLINK(\"http://x\")", "ok", "-12"]),
            Column::new("n".into(), [-1i64, 2, 3]),
        ])
        .unwrap();
        let csv = String::from_utf8(csv_bytes(&mut df).unwrap()).unwrap();
        assert_eq!(
            csv,
            "member,n\n\"'=HYPERLINK(\"\"http://x\"\")\",-1\nok,2\n-12,3\n"
        );
        // The frame itself (and so the Parquet) keeps the value as it is.
        assert_eq!(
            df.column("member").unwrap().str().unwrap().get(0),
            Some("=HYPERLINK(\"http://x\")")
        );
    }
}
