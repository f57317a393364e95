//! Byte runs: sorted, non-overlapping `(start, len)` ranges of an address space or of a
//! mapping (which pages are stored, written, resident), and the set arithmetic on them.

use std::ops::Deref;

/// Sorted, non-overlapping, non-empty `(start, len)` byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runs(Vec<(u64, u64)>);

impl Runs {
    /// No bytes.
    pub fn new() -> Runs {
        Runs(Vec::new())
    }

    /// `(start, len)` runs that are already sorted and do not overlap (as an image stores
    /// them); touching runs are merged, empty ones dropped.
    pub fn from_sorted(runs: impl IntoIterator<Item = (u64, u64)>) -> Runs {
        Runs::from_spans(runs.into_iter().map(|(s, l)| (s, s + l)))
    }

    /// `(start, end)` spans sorted by start; overlapping and touching spans are merged.
    pub fn from_spans(spans: impl IntoIterator<Item = (u64, u64)>) -> Runs {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (s, e) in spans.into_iter().filter(|&(s, e)| e > s) {
            match out.last_mut() {
                Some(last) if last.0 + last.1 >= s => last.1 = last.1.max(e - last.0),
                _ => out.push((s, e - s)),
            }
        }
        Runs(out)
    }

    /// The bytes of `self` that are not in `other`.
    pub fn minus(&self, other: &Runs) -> Runs {
        let b = &other.0;
        let mut out = Vec::with_capacity(self.0.len());
        let mut j = 0;
        for &(s, l) in &self.0 {
            let (mut s, e) = (s, s + l);
            while j < b.len() && b[j].0 + b[j].1 <= s {
                j += 1;
            }
            let mut k = j;
            while s < e {
                match b.get(k) {
                    Some(&(bs, bl)) if bs < e => {
                        if bs > s {
                            out.push((s, bs - s));
                        }
                        s = s.max(bs + bl);
                        k += 1;
                    }
                    _ => {
                        out.push((s, e - s));
                        break;
                    }
                }
            }
        }
        Runs(out)
    }

    /// The bytes in `self` or in `other`.
    pub fn union(&self, other: &Runs) -> Runs {
        let mut all: Vec<(u64, u64)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        Runs::from_sorted(all)
    }

    /// The same runs with `base` subtracted from every start (absolute addresses to offsets
    /// in a mapping starting at `base`, which must not lie above the first run).
    pub fn relative_to(&self, base: u64) -> Runs {
        Runs(self.0.iter().map(|&(s, l)| (s - base, l)).collect())
    }

    /// Total number of bytes.
    pub fn bytes(&self) -> u64 {
        self.0.iter().map(|r| r.1).sum()
    }

    /// The runs as `(start, end)` spans.
    pub fn spans(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|&(s, l)| (s, s + l))
    }

    /// The runs as `(start, len)` pairs.
    pub fn into_vec(self) -> Vec<(u64, u64)> {
        self.0
    }
}

impl Deref for Runs {
    type Target = [(u64, u64)];
    fn deref(&self) -> &[(u64, u64)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Runs;

    fn runs(v: &[(u64, u64)]) -> Runs {
        Runs::from_sorted(v.iter().copied())
    }

    #[test]
    fn run_lists_subtract_and_unite() {
        let a = runs(&[(0, 10), (20, 10), (40, 5)]);
        let b = runs(&[(5, 20), (42, 1), (50, 5)]);
        assert_eq!(&*a.minus(&b), &[(0, 5), (25, 5), (40, 2), (43, 2)]);
        assert_eq!(a.minus(&Runs::new()), a);
        assert_eq!(&*Runs::new().minus(&b), &[]);
        assert_eq!(&*a.union(&b), &[(0, 30), (40, 5), (50, 5)]);
    }

    #[test]
    fn spans_merge_when_they_touch_or_overlap() {
        let r = Runs::from_spans([(0, 4), (4, 8), (6, 10), (12, 12), (16, 20)]);
        assert_eq!(&*r, &[(0, 10), (16, 4)]);
        assert_eq!(r.bytes(), 14);
        assert_eq!(r.spans().collect::<Vec<_>>(), vec![(0, 10), (16, 20)]);
        assert_eq!(&*r.relative_to(0), &*r);
        assert_eq!(&*runs(&[(8, 4)]).relative_to(8), &[(0, 4)]);
    }

    #[test]
    fn uncovered_parts_of_stored_ranges() {
        let gap = |stored: &[(u64, u64)], written: &[(u64, u64)]| -> Vec<(u64, u64)> {
            runs(stored)
                .minus(&Runs::from_spans(written.iter().copied()))
                .spans()
                .collect()
        };
        // Nothing written: every stored range.
        assert_eq!(gap(&[(0, 8), (16, 4)], &[]), vec![(0, 8), (16, 20)]);
        // Chunks of 4 at 0 and 8 written; 4..8 and the range at 16 are left.
        assert_eq!(
            gap(&[(0, 12), (16, 4)], &[(0, 4), (8, 12)]),
            vec![(4, 8), (16, 20)]
        );
        // A chunk covering several stored ranges and a gap.
        assert_eq!(gap(&[(2, 2), (6, 2)], &[(0, 10)]), vec![]);
        // A chunk straddling the end of one range and the start of the next: stored runs that
        // touch are one run.
        assert_eq!(gap(&[(0, 6), (6, 6)], &[(4, 8)]), vec![(0, 4), (8, 12)]);
    }
}
