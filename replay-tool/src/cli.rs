//! The command line of `ledger-replay`: arguments, output (text or JSON)
//! and exit codes (0 verified, 1 a finding, 2 a usage or environment
//! problem).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::export::{Exporter, Filter};
use crate::report::ReportBuilder;
use crate::source::VerifiedEvent;
use crate::verify::{ExpectedHead, Verified, verify};
use crate::{AsOf, LogSource, ReplayError};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ledger_core::domain::Timestamp;
use ledger_core::domain::idempotency::RETENTION_SECONDS_DEFAULT;
use ledger_core::domain::ids::{AccountId, MerchantId};
use ledger_core::store::LogError;
use projections::Projections;
use serde_json::json;

/// The auditor's replay tool: everything rebuilt and verified from the log.
#[derive(Debug, Parser)]
#[command(name = "ledger-replay", version, about)]
struct Cli {
    /// Machine-readable JSON output instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Subcommands,
}

#[derive(Debug, clap::Args)]
struct Ledger {
    /// The server's data directory (only read).
    data_dir: PathBuf,
    /// Stop at this log position, or before the first event recorded after
    /// this RFC 3339 time.
    #[arg(long)]
    as_of: Option<AsOf>,
    /// The server's --idempotency-seconds: within this many seconds of a
    /// command taking effect, its id must not take effect again.
    #[arg(long, default_value_t = RETENTION_SECONDS_DEFAULT)]
    idempotency_seconds: u64,
}

#[derive(Debug, Subcommand)]
enum Subcommands {
    /// Checksums, hash chain, positions, time order, and every invariant
    /// after every event.
    Verify {
        #[command(flatten)]
        ledger: Ledger,
        /// A head recorded earlier, POSITION:HASH; the record there must
        /// still have that hash.
        #[arg(long)]
        expect_head: Option<ExpectedHead>,
    },
    /// Rebuild the read models and write them as CSV (and JSON with
    /// --json) with a manifest.
    Rebuild {
        #[command(flatten)]
        ledger: Ledger,
        #[arg(long)]
        out: PathBuf,
    },
    /// Events as JSON Lines or CSV, filtered.
    Export {
        #[command(flatten)]
        ledger: Ledger,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        merchant: Option<String>,
        /// Event types to keep (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
        /// Events recorded at or after this RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// Events recorded before this RFC 3339 time.
        #[arg(long)]
        to: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// The audit report: monthly flows, cap and budget use, settlements,
    /// risk alerts, largest movements.
    Report {
        #[command(flatten)]
        ledger: Ledger,
    },
    /// Compare a live server's read models with the rebuilt ones.
    Diff {
        data_dir: PathBuf,
        /// As for verify.
        #[arg(long, default_value_t = RETENTION_SECONDS_DEFAULT)]
        idempotency_seconds: u64,
        #[arg(long)]
        server: String,
        #[arg(long, env = "LEDGER_ADMIN_KEY", hide_env_values = true)]
        key: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

/// The outcome of a run: the exit code, and what was already printed.
enum Failure {
    /// The ledger failed verification, or differs from the server.
    Finding(String),
    /// Bad arguments or an environment problem.
    Usage(String),
}

/// Runs the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Finding(message)) => {
            report_failure(json, "verification_failed", &message);
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            report_failure(json, "usage", &message);
            ExitCode::from(2)
        }
    }
}

fn report_failure(json: bool, kind: &str, message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = if json {
        writeln!(
            stderr,
            "{}",
            serde_json::json!({"ok": false, "kind": kind, "error": message})
        )
    } else {
        writeln!(stderr, "ledger-replay: {message}")
    };
}

impl From<ReplayError> for Failure {
    fn from(error: ReplayError) -> Failure {
        match error {
            ReplayError::NoLedger { .. }
            | ReplayError::Output(_)
            | ReplayError::Open {
                source: LogError::Io { .. } | LogError::NotFound { .. },
            } => Failure::Usage(error.to_string()),
            other => Failure::Finding(other.to_string()),
        }
    }
}

fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .map_err(|error| Failure::Usage(format!("cannot write the output: {error}")))
}

fn progress(source: &LogSource, as_of: AsOf) -> ProgressBar {
    let total = match as_of {
        AsOf::Position(position) => position.min(source.head().position),
        _ => source.head().position,
    };
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} events, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Verifies the ledger, handing every event to `observe`.
fn replay(
    ledger: &Ledger,
    expect_head: Option<ExpectedHead>,
    mut observe: impl FnMut(VerifiedEvent, &ledger_core::domain::State) -> Result<(), ReplayError>,
) -> Result<(Verified, ledger_core::domain::State), Failure> {
    let as_of = ledger.as_of.unwrap_or(AsOf::Head);
    let mut source = LogSource::open(&ledger.data_dir, as_of, ledger.idempotency_seconds)?;
    let bar = progress(&source, as_of);
    let mut observed = Ok(());
    let result = verify(&mut source, expect_head, |event, state| {
        if event.envelope.position % 4_096 == 0 {
            bar.set_position(event.envelope.position);
        }
        if observed.is_ok() {
            observed = observe(event, state);
        }
    });
    bar.finish_and_clear();
    let verified = result?;
    observed?;
    Ok(verified)
}

/// Folds the verified events into read models in chunks
/// (`Projections::apply_all`: model by model, a long run on two threads);
/// `finish` folds the last one.
struct ModelFolder<'models> {
    models: &'models mut Projections,
    chunk: Vec<ledger_core::engine::EventEnvelope>,
}

impl<'models> ModelFolder<'models> {
    fn new(models: &'models mut Projections) -> ModelFolder<'models> {
        ModelFolder {
            models,
            chunk: Vec::with_capacity(projections::FOLD_CHUNK_ENVELOPES),
        }
    }

    fn observe(&mut self, event: VerifiedEvent) -> Result<(), ReplayError> {
        self.chunk.push(event.envelope);
        if self.chunk.len() == projections::FOLD_CHUNK_ENVELOPES {
            self.fold()?;
        }
        Ok(())
    }

    fn fold(&mut self) -> Result<(), ReplayError> {
        let folded = self.models.apply_all(&self.chunk);
        self.chunk.clear();
        folded.map(drop).map_err(|error| {
            ReplayError::Output(format!("the read models refused the log: {error}"))
        })
    }

    fn finish(mut self) -> Result<(), Failure> {
        Ok(self.fold()?)
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Subcommands::Verify {
            ledger,
            expect_head,
        } => {
            let (verified, _) = replay(&ledger, expect_head, |_, _| Ok(()))?;
            if cli.json {
                print(&json!({"ok": true, "verified": verified}).to_string())
            } else {
                print(&verified_text(&verified))
            }
        }
        Subcommands::Rebuild { ledger, out } => {
            refuse_inside(&ledger.data_dir, &out)?;
            let mut models = Projections::new();
            let mut folder = ModelFolder::new(&mut models);
            let (verified, _) = replay(&ledger, None, |event, _| folder.observe(event))?;
            folder.finish()?;
            let files = crate::rebuild::write(&out, &models, &verified, cli.json)?;
            if cli.json {
                print(&json!({"ok": true, "verified": verified, "files": files}).to_string())
            } else {
                print(&format!(
                    "{}\nwrote {} to {}",
                    verified_text(&verified),
                    files.join(", "),
                    out.display()
                ))
            }
        }
        Subcommands::Export {
            ledger,
            format,
            account,
            merchant,
            types,
            from,
            to,
            output,
        } => {
            let filter = Filter {
                account: account
                    .map(AccountId::parse)
                    .transpose()
                    .map_err(|error| Failure::Usage(format!("--account: {error}")))?,
                merchant: merchant
                    .map(MerchantId::parse)
                    .transpose()
                    .map_err(|error| Failure::Usage(format!("--merchant: {error}")))?,
                types,
                from: from.as_deref().map(parse_time).transpose()?,
                to: to.as_deref().map(parse_time).transpose()?,
            };
            if let Some(path) = &output {
                refuse_inside(&ledger.data_dir, path)?;
            }
            let writer: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).map_err(|error| {
                        Failure::Usage(format!("cannot create {}: {error}", path.display()))
                    })?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut exporter = match format {
                ExportFormat::Jsonl => Exporter::JsonLines(writer),
                ExportFormat::Csv => Exporter::Csv(Box::new(csv::Writer::from_writer(writer))),
            };
            replay(&ledger, None, |event, _| {
                if filter.admits(&event) {
                    exporter.write(&event)
                } else {
                    Ok(())
                }
            })?;
            exporter.finish()?;
            Ok(())
        }
        Subcommands::Report { ledger } => {
            let mut models = Projections::new();
            let mut builder = ReportBuilder::default();
            let mut folder = ModelFolder::new(&mut models);
            let (verified, state) = replay(&ledger, None, |event, state| {
                builder.observe(&event, state);
                folder.observe(event)
            })?;
            folder.finish()?;
            let report = builder.finish(&state, &models);
            if cli.json {
                print(&json!({"ok": true, "verified": verified, "report": report}).to_string())
            } else {
                print(&format!(
                    "{}\n\n{}",
                    verified_text(&verified),
                    crate::report_text::render(&report)
                ))
            }
        }
        Subcommands::Diff {
            data_dir,
            idempotency_seconds,
            server,
            key,
        } => {
            let reader = crate::diff::ServerReader::new(&server, &key);
            let position = reader.position()?;
            let ledger = Ledger {
                data_dir,
                as_of: Some(AsOf::Position(position)),
                idempotency_seconds,
            };
            let mut models = Projections::new();
            let mut folder = ModelFolder::new(&mut models);
            let (verified, _) = replay(&ledger, None, |event, _| folder.observe(event))?;
            folder.finish()?;
            if verified.head_position != position {
                return Err(Failure::Usage(format!(
                    "the server is at position {position} but this log ends at {}; point diff at the server's own data directory",
                    verified.head_position
                )));
            }
            let differences = crate::diff::diff(&reader, &models, position)?;
            if cli.json {
                print(&json!({"ok": differences.is_empty(), "position": position, "differences": differences}).to_string())?;
            } else {
                print(&format!(
                    "compared at position {position}: {} differences",
                    differences.len()
                ))?;
                for difference in &differences {
                    print(&format!(
                        "  {}: rebuilt {} · server {}",
                        difference.what, difference.rebuilt, difference.server
                    ))?;
                }
            }
            if differences.is_empty() {
                Ok(())
            } else {
                Err(Failure::Finding(format!(
                    "{} differences between the server and the log",
                    differences.len()
                )))
            }
        }
    }
}

fn parse_time(text: &str) -> Result<Timestamp, Failure> {
    Timestamp::parse_rfc3339(text).map_err(|error| Failure::Usage(format!("`{text}`: {error}")))
}

/// Output must never land in the data directory the tool only reads.
fn refuse_inside(data_dir: &Path, out: &Path) -> Result<(), Failure> {
    let resolved = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let data_dir = resolved(data_dir);
    let target = out
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .map_or_else(
            || resolved(out),
            |parent| resolved(parent).join(out.file_name().unwrap_or_default()),
        );
    if target.starts_with(&data_dir) {
        return Err(Failure::Usage(format!(
            "{} is inside the data directory, which ledger-replay never writes to",
            out.display()
        )));
    }
    Ok(())
}

fn verified_text(verified: &Verified) -> String {
    format!(
        "verified: {} events of ledger {}\nhead: {}:{}\nlast event at: {}\naccounts: {}, merchants: {}\nsupply: cap {}, outstanding {}, issued {}, redeemed {}, expired {}, reversed {}\nchecked: every record's checksum and chain link, gapless positions, time order, invariants 1 to 7 after every event (command ids within {} s), every sum of money, every risk alert, every actor's right to act\ntime: {:.3} s ({:.0} events/s)",
        verified.events,
        verified.ledger_id,
        verified.head_position,
        verified.head_hash,
        verified
            .last_recorded_at
            .map_or_else(|| "-".to_owned(), |at| at.to_string()),
        verified.accounts,
        verified.merchants,
        verified
            .supply_cap
            .map_or_else(|| "none".to_owned(), |cap| cap.to_string()),
        verified.outstanding,
        verified.issued_total,
        verified.redeemed_total,
        verified.expired_total,
        verified.reversed_total,
        verified.idempotency_seconds,
        verified.seconds,
        verified.events as f64 / verified.seconds.max(1e-9),
    )
}
