//! `cairn prune` and `cairn gc`, and the retention columns of `cairn generations`.

use std::time::Duration;

use anyhow::Context;
use cairn_gc::{Decision, GcError, Policy, PruneOptions, SweepOptions};
use cairn_store::Store;
use clap::Args;

use crate::cli::common::{format_time_ms, human_bytes, print_json, StoreOpt};
use crate::exit::usage;

/// Retention rules, shared by `cairn prune` and `cairn generations`.
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// Keep the newest N generations of each job.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep generations committed within DURATION (e.g. 2h, 7days) of the job's newest one.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub keep_within: Option<Duration>,
    /// Keep the newest generation of each of the last N hours (UTC) that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<usize>,
    /// Keep the newest generation of each of the last N days (UTC) that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<usize>,
}

impl PolicyArgs {
    /// The policy these options describe, or None when no rule is given (as for the agent
    /// verbs, where retention is optional).
    pub fn optional(&self) -> Option<Policy> {
        Some(self.policy()).filter(|p| !p.is_empty())
    }

    /// The policy these options describe.
    pub fn policy(&self) -> Policy {
        Policy {
            keep_last: self.keep_last,
            keep_within: self.keep_within,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
        }
    }
}

/// `cairn prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Only this job (default: every job, each on its own).
    #[arg(long)]
    pub job: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub policy: PolicyArgs,
    /// Show what would be kept and dropped; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

/// `cairn gc`.
#[derive(Args, Debug)]
pub struct GcArgs {
    /// Show what would be condemned, repacked and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Repack packs with more than PERCENT of their bytes unused (100: never repack).
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub max_unused: f64,
    /// Seconds between condemning a pack and deleting it; must exceed the longest
    /// checkpoint. 0 deletes at once (only safe when no checkpoint is being written).
    #[arg(long, value_name = "SECS", env = cairn_gc::GRACE_ENV,
          default_value_t = cairn_gc::DEFAULT_GRACE.as_secs())]
    pub grace: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

fn gc_err(e: GcError) -> anyhow::Error {
    if e.is_bad_input() {
        match e {
            GcError::Store(s) => anyhow::Error::new(s),
            other => usage(other.to_string()),
        }
    } else {
        anyhow::Error::new(e)
    }
}

fn print_decisions(ds: &[Decision], dropped_word: &str) {
    println!(
        "{:>6}  {:<20}  {:<20}  {:<7}  REASON",
        "ID", "JOB", "TIME", "ACTION"
    );
    for d in ds {
        let (action, why) = if d.keep {
            let r: Vec<&str> = d.reasons.iter().map(|r| r.name()).collect();
            ("keep", r.join(", "))
        } else {
            (dropped_word, String::new())
        };
        println!(
            "{:>6}  {:<20}  {:<20}  {:<7}  {}",
            d.id.0,
            d.job,
            format_time_ms(d.time_ms),
            action,
            why
        );
    }
}

/// Run `cairn prune`.
pub fn prune(a: PruneArgs) -> anyhow::Result<i32> {
    let policy = a.policy.policy();
    if policy.is_empty() {
        return Err(gc_err(GcError::EmptyPolicy));
    }
    let store = a.opt.open()?;
    let r = cairn_gc::prune(
        &store,
        &PruneOptions {
            job: a.job.clone(),
            policy,
            dry_run: a.dry_run,
        },
    )
    .map_err(gc_err)
    .context("prune")?;
    if a.opt.json {
        print_json(&r)?;
        return Ok(0);
    }
    print_decisions(&r.decisions, if a.dry_run { "would drop" } else { "drop" });
    println!(
        "{} kept, {} {}{} in {:.2}s{}",
        r.kept(),
        r.dropped(),
        if a.dry_run {
            "would be dropped"
        } else {
            "dropped"
        },
        if a.dry_run { " (dry run)" } else { "" },
        r.elapsed_ms as f64 / 1000.0,
        if !a.dry_run && r.dropped() > 0 {
            "; run `cairn gc` to reclaim their space"
        } else {
            ""
        }
    );
    Ok(0)
}

/// Run `cairn gc`.
pub fn gc(a: GcArgs) -> anyhow::Result<i32> {
    let store = a.opt.open()?;
    let opts = SweepOptions {
        dry_run: a.dry_run,
        max_unused_percent: a.max_unused,
        grace: Duration::from_secs(a.grace),
    };
    let r = cairn_gc::sweep(&store, &opts)
        .map_err(gc_err)
        .context("gc")?;
    if a.opt.json {
        print_json(&r)?;
        return Ok(0);
    }
    let verb = |done: &'static str, would: &'static str| if a.dry_run { would } else { done };
    println!(
        "marked {} live chunks of {} generations",
        r.live_chunks, r.generations
    );
    println!(
        "{} {} packs, {} {} packs ({} chunks, {} copied), {} {} packs",
        verb("deleted", "would delete"),
        r.deleted.len(),
        verb("condemned", "would condemn"),
        r.condemned.len() + r.repacked.len(),
        r.copied_chunks,
        human_bytes(r.copied_bytes),
        verb("repacked", "would repack"),
        r.repacked.len(),
    );
    if r.waiting > 0 || r.young > 0 {
        println!(
            "{} condemned packs wait for their grace period ({}s); {} packs younger than it left alone",
            r.waiting, a.grace, r.young
        );
    }
    for d in &r.damaged {
        println!("damaged pack left alone: {d}");
    }
    println!(
        "space before {} in {} packs, after {} in {} packs{}; {:.2}s",
        human_bytes(r.bytes_before),
        r.packs_before,
        human_bytes(r.bytes_after),
        r.packs_after,
        if r.reclaimable_bytes > 0 {
            format!(
                "; {} {}",
                human_bytes(r.reclaimable_bytes),
                verb("freed when condemned packs are deleted", "reclaimable")
            )
        } else {
            String::new()
        },
        r.elapsed_ms as f64 / 1000.0
    );
    Ok(0)
}

/// The keep/drop column of `cairn generations` for each generation id: the decision of the
/// given policy, or only the protections when no rule is given.
pub fn retention_column(
    store: &Store,
    job: Option<&str>,
    policy: &PolicyArgs,
) -> anyhow::Result<std::collections::HashMap<u64, String>> {
    let ds = cairn_gc::explain(store, job, &policy.policy()).map_err(gc_err)?;
    let with_rules = !policy.policy().is_empty();
    Ok(ds
        .into_iter()
        .map(|d| {
            let text = if !d.keep {
                "drop".to_string()
            } else if d.reasons.is_empty() {
                String::new()
            } else {
                let r: Vec<&str> = d.reasons.iter().map(|r| r.name()).collect();
                if with_rules {
                    format!("keep ({})", r.join(", "))
                } else {
                    r.join(", ")
                }
            };
            (d.id.0, text)
        })
        .collect())
}
