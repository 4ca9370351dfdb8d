use std::process::ExitCode;

use cc_analytics::config::{Cli, Command, RunConfig};
use cc_analytics::{generate, pipeline, Error};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CC_ANALYTICS_LOG")
                .unwrap_or_else(|_| format!("warn,cc_analytics={level}").into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Run(args) => {
                let cfg = RunConfig::resolve(args, chrono::Utc::now())?;
                let outcome = pipeline::run(&cfg, std::env::args().collect()).await?;
                if !cli.quiet {
                    let c = &outcome.manifest.counts;
                    eprintln!(
                        "cc-analytics: run {}: {} objects, {} lines ({} quarantined), {} records: {} used, {} duplicates, {} outside the dates, {} ignored, {} rejected; {} dates; {}",
                        outcome.manifest.run_id,
                        outcome.manifest.objects.read,
                        c.lines_read,
                        c.lines_quarantined,
                        c.records_parsed,
                        c.records_used,
                        c.records_duplicate,
                        c.records_outside_range,
                        c.records_ignored,
                        c.records_rejected,
                        outcome.manifest.dates_recomputed.len(),
                        if outcome.wrote { format!("wrote {}", cfg.output) } else { "nothing written".into() }
                    );
                }
                Ok(())
            }
            Command::Generate(args) => {
                let s = generate::generate(args).await?;
                if !cli.quiet {
                    eprintln!(
                        "cc-analytics: generated {} records in {} objects ({} bytes, {} records re-uploaded) under {}",
                        s.records, s.objects, s.bytes, s.duplicated_records, args.output
                    );
                }
                Ok::<(), Error>(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cc-analytics: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
