//! Tables → Parquet and CSV bytes.

use polars::io::parquet::write::KeyValueMetadata;
use polars::prelude::*;

use crate::error::Result;

/// Parquet with zstd and full column statistics. The file carries no `ARROW:schema` entry, so
/// every reader derives the Arrow types from the Parquet logical types: strings are plain `Utf8`
/// (not the string views polars uses internally), dates `Date32`, integers `Int64`.
pub fn parquet_bytes(df: &mut DataFrame, table: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(vec![(
            "cc_analytics.table".to_string(),
            table.to_string(),
        )])))
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
