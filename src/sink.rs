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

/// Parquet with zstd and full column statistics.
pub fn parquet_bytes(df: &mut DataFrame, table: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(vec![
            arrow_schema_entry(df),
            ("cc_analytics.table".to_string(), table.to_string()),
        ])))
        .finish(df)?;
    Ok(buf)
}

/// CSV: header line, RFC 4180 quoting, `.` decimals (at most 6), ISO dates, empty for null.
pub fn csv_bytes(df: &mut DataFrame) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf)
        .include_header(true)
        .with_float_precision(Some(6))
        .finish(df)?;
    Ok(buf)
}
