//! Retention rules, restic-like: keep-last, keep-within, keep-hourly, keep-daily, combinable
//! (a generation is kept when any rule keeps it), plus the protection of the newest
//! consistent generation of a job and its fallback, whatever the rules say.
//!
//! Everything here is a pure function of (id, time) pairs, so it is tested against tables.

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_store::GenerationId;
use serde::Serialize;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Which generations to keep. `None` means the rule is not used; `Some(0)` is a rule that
/// keeps nothing by itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep the newest N generations (commit order).
    pub keep_last: Option<usize>,
    /// Keep generations committed within this duration before the job's newest one.
    pub keep_within: Option<Duration>,
    /// Keep the newest generation of each of the last N hours (UTC) that have one.
    pub keep_hourly: Option<usize>,
    /// Keep the newest generation of each of the last N days (UTC) that have one.
    pub keep_daily: Option<usize>,
}

impl Policy {
    /// True when no rule is given.
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_within.is_none()
            && self.keep_hourly.is_none()
            && self.keep_daily.is_none()
    }

    /// Only keep-last N (what `cairn run --keep-last N` uses).
    pub fn last(n: usize) -> Policy {
        Policy {
            keep_last: Some(n),
            ..Policy::default()
        }
    }
}

/// Why a generation is kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The newest consistent generation of its job (always kept).
    NewestConsistent,
    /// The consistent generation before the newest consistent one (always kept).
    Fallback,
    /// Among the newest N.
    Last,
    /// Within the keep-within duration of the newest generation.
    Within,
    /// The newest of its hour.
    Hourly,
    /// The newest of its day.
    Daily,
}

impl Reason {
    /// Short name used in tables.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::NewestConsistent => "newest-consistent",
            Reason::Fallback => "fallback",
            Reason::Last => "last",
            Reason::Within => "within",
            Reason::Hourly => "hourly",
            Reason::Daily => "daily",
        }
    }
}

/// A generation as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its id (unique, increasing in commit order).
    pub id: GenerationId,
    /// Commit time, ms since the epoch.
    pub time_ms: u64,
}

/// The verdict on one generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Generation id.
    pub id: GenerationId,
    /// Its job.
    pub job: String,
    /// Commit time, ms since the epoch.
    pub time_ms: u64,
    /// Kept (true) or dropped.
    pub keep: bool,
    /// Every rule that keeps it (empty when dropped), protection first.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// "kept (last, hourly)" or "dropped".
    pub fn describe(&self) -> String {
        if self.keep {
            let r: Vec<&str> = self.reasons.iter().map(Reason::name).collect();
            format!("keep ({})", r.join(", "))
        } else {
            "drop".to_string()
        }
    }
}

/// Apply `policy` to the generations of one job. `newest_consistent` and `fallback` are
/// always kept. Returns one decision per candidate, newest first (by id). The job field of
/// the decisions is `job`.
pub fn apply(
    job: &str,
    cands: &[Candidate],
    policy: &Policy,
    newest_consistent: Option<GenerationId>,
    fallback: Option<GenerationId>,
) -> Vec<Decision> {
    let mut by_id: Vec<&Candidate> = cands.iter().collect();
    by_id.sort_by_key(|c| std::cmp::Reverse(c.id));
    let mut reasons: Vec<BTreeSet<Reason>> = vec![BTreeSet::new(); by_id.len()];

    if let Some(n) = policy.keep_last {
        for r in reasons.iter_mut().take(n) {
            r.insert(Reason::Last);
        }
    }
    if let Some(d) = policy.keep_within {
        let newest = by_id.iter().map(|c| c.time_ms).max().unwrap_or(0);
        let cutoff = newest.saturating_sub(d.as_millis().min(u128::from(u64::MAX)) as u64);
        for (i, c) in by_id.iter().enumerate() {
            if c.time_ms >= cutoff {
                reasons[i].insert(Reason::Within);
            }
        }
    }
    // Buckets are walked newest first by time (ties: higher id first); the first
    // generation met in a bucket is the newest of that bucket.
    let mut by_time: Vec<usize> = (0..by_id.len()).collect();
    by_time.sort_by(|&a, &b| (by_id[b].time_ms, by_id[b].id).cmp(&(by_id[a].time_ms, by_id[a].id)));
    for (n, width, reason) in [
        (policy.keep_hourly, HOUR_MS, Reason::Hourly),
        (policy.keep_daily, DAY_MS, Reason::Daily),
    ] {
        let Some(n) = n else { continue };
        let mut last: Option<u64> = None;
        let mut kept = 0usize;
        for &i in &by_time {
            if kept >= n {
                break;
            }
            let bucket = by_id[i].time_ms / width;
            if last != Some(bucket) {
                reasons[i].insert(reason.clone());
                last = Some(bucket);
                kept += 1;
            }
        }
    }
    for (i, c) in by_id.iter().enumerate() {
        if Some(c.id) == newest_consistent {
            reasons[i].insert(Reason::NewestConsistent);
        }
        if Some(c.id) == fallback {
            reasons[i].insert(Reason::Fallback);
        }
    }
    by_id
        .iter()
        .zip(reasons)
        .map(|(c, r)| Decision {
            id: c.id,
            job: job.to_string(),
            time_ms: c.time_ms,
            keep: !r.is_empty(),
            reasons: r.into_iter().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = HOUR_MS;
    const T0: u64 = 1_800_000_000_000 - (1_800_000_000_000 % DAY_MS); // a UTC midnight

    fn c(id: u64, time_ms: u64) -> Candidate {
        Candidate {
            id: GenerationId(id),
            time_ms,
        }
    }

    fn kept(d: &[Decision]) -> Vec<u64> {
        let mut v: Vec<u64> = d.iter().filter(|d| d.keep).map(|d| d.id.0).collect();
        v.sort();
        v
    }

    struct Case {
        name: &'static str,
        cands: Vec<Candidate>,
        policy: Policy,
        protect: (Option<u64>, Option<u64>),
        expect: Vec<u64>,
    }

    fn cases() -> Vec<Case> {
        let hourly5: Vec<Candidate> = (1..=10).map(|i| c(i, T0 + i * H / 2)).collect();
        vec![
            Case {
                name: "empty job",
                cands: vec![],
                policy: Policy::last(3),
                protect: (None, None),
                expect: vec![],
            },
            Case {
                name: "one generation, keep-last 0, protected as newest",
                cands: vec![c(7, T0)],
                policy: Policy::last(0),
                protect: (Some(7), None),
                expect: vec![7],
            },
            Case {
                name: "keep-last 0 still keeps newest consistent and fallback",
                cands: (1..=5).map(|i| c(i, T0 + i)).collect(),
                policy: Policy::last(0),
                protect: (Some(5), Some(4)),
                expect: vec![4, 5],
            },
            Case {
                name: "keep-last 2 of 5",
                cands: (1..=5).map(|i| c(i, T0 + i)).collect(),
                policy: Policy::last(2),
                protect: (None, None),
                expect: vec![4, 5],
            },
            Case {
                name: "keep-last larger than the job",
                cands: (1..=3).map(|i| c(i, T0 + i)).collect(),
                policy: Policy::last(10),
                protect: (None, None),
                expect: vec![1, 2, 3],
            },
            Case {
                name: "fallback protected when the newest is damaged",
                cands: (1..=6).map(|i| c(i, T0 + i)).collect(),
                policy: Policy::last(1),
                protect: (Some(4), Some(2)),
                expect: vec![2, 4, 6],
            },
            Case {
                name: "equal timestamps: keep-last goes by id",
                cands: (1..=4).map(|i| c(i, T0)).collect(),
                policy: Policy::last(2),
                protect: (None, None),
                expect: vec![3, 4],
            },
            Case {
                name: "equal timestamps: one hourly bucket keeps the highest id",
                cands: (1..=4).map(|i| c(i, T0 + 5)).collect(),
                policy: Policy {
                    keep_hourly: Some(3),
                    ..Policy::default()
                },
                protect: (None, None),
                expect: vec![4],
            },
            Case {
                name: "hourly: newest of each of the last 3 hours",
                cands: hourly5.clone(),
                policy: Policy {
                    keep_hourly: Some(3),
                    ..Policy::default()
                },
                protect: (None, None),
                // times are i*30min: hours 5 (id 10), 4 (9, 8), 3 (7, 6) → 10, 9, 7
                expect: vec![7, 9, 10],
            },
            Case {
                name: "hourly: skipped hours do not count",
                cands: vec![c(1, T0), c(2, T0 + 5 * H), c(3, T0 + 9 * H)],
                policy: Policy {
                    keep_hourly: Some(2),
                    ..Policy::default()
                },
                protect: (None, None),
                expect: vec![2, 3],
            },
            Case {
                name: "daily: newest of each of the last 2 days",
                cands: vec![
                    c(1, T0 + H),
                    c(2, T0 + 20 * H),
                    c(3, T0 + DAY_MS + H),
                    c(4, T0 + DAY_MS + 2 * H),
                    c(5, T0 + 3 * DAY_MS),
                ],
                policy: Policy {
                    keep_daily: Some(2),
                    ..Policy::default()
                },
                protect: (None, None),
                expect: vec![4, 5],
            },
            Case {
                name: "within: relative to the newest generation, inclusive",
                cands: vec![c(1, T0), c(2, T0 + H), c(3, T0 + 2 * H), c(4, T0 + 3 * H)],
                policy: Policy {
                    keep_within: Some(Duration::from_secs(7200)),
                    ..Policy::default()
                },
                protect: (None, None),
                expect: vec![2, 3, 4],
            },
            Case {
                name: "rules combine as a union",
                cands: hourly5,
                policy: Policy {
                    keep_last: Some(1),
                    keep_hourly: Some(2),
                    keep_within: Some(Duration::from_secs(60)),
                    keep_daily: Some(1),
                },
                protect: (Some(10), Some(9)),
                expect: vec![9, 10],
            },
            Case {
                name: "clock went backwards: keep-last by commit order, hourly by time",
                cands: vec![c(1, T0 + 3 * H), c(2, T0 + H), c(3, T0 + 2 * H)],
                policy: Policy {
                    keep_last: Some(1),
                    keep_hourly: Some(1),
                    ..Policy::default()
                },
                protect: (None, None),
                expect: vec![1, 3],
            },
        ]
    }

    #[test]
    fn table_of_cases() {
        for case in cases() {
            let d = apply(
                "job",
                &case.cands,
                &case.policy,
                case.protect.0.map(GenerationId),
                case.protect.1.map(GenerationId),
            );
            assert_eq!(d.len(), case.cands.len(), "{}", case.name);
            assert_eq!(kept(&d), case.expect, "case: {}", case.name);
            for x in &d {
                assert_eq!(x.keep, !x.reasons.is_empty(), "{}", case.name);
            }
        }
    }

    #[test]
    fn reasons_name_every_rule_that_keeps() {
        let cands: Vec<Candidate> = (1..=3).map(|i| c(i, T0 + i * H)).collect();
        let p = Policy {
            keep_last: Some(1),
            keep_hourly: Some(2),
            ..Policy::default()
        };
        let d = apply(
            "j",
            &cands,
            &p,
            Some(GenerationId(3)),
            Some(GenerationId(2)),
        );
        assert_eq!(
            d[0].reasons,
            vec![Reason::NewestConsistent, Reason::Last, Reason::Hourly]
        );
        assert_eq!(d[0].describe(), "keep (newest-consistent, last, hourly)");
        assert_eq!(d[1].reasons, vec![Reason::Fallback, Reason::Hourly]);
        assert_eq!(d[2].describe(), "drop");
        assert!(d.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    }
}
