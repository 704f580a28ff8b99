//! The target log of an offset-exact restore (`--offsets exact`): how to
//! write a partition so that every record lands at its source offset, as a
//! plan of steps (format-spec §14 "Offset-exact restore").
//!
//! A producer cannot choose offsets, but the log can be made to match
//! (checked on a real broker: `tests/integration/kafka_exact.rs`):
//! - below the log start, placeholders, removed afterwards by DeleteRecords;
//! - a gap of one offset (a commit marker, one compacted record): the record
//!   before it is written in a transaction that commits, whose marker takes
//!   the gap;
//! - a gap of k ≥ 2 offsets: a transaction of k − 1 placeholders that
//!   aborts, whose marker takes the last one (read_committed consumers never
//!   see aborted records; a compacted topic's cleaner removes them);
//! - every record else, written plainly in order;
//! - where records were erased (`kvault rewrite`), placeholders written
//!   plainly and kept: the offsets stay taken, the records are gone.
//!
//! A gap of one offset at offset 0 has no record before it to commit: it
//! cannot be reproduced.

use std::collections::VecDeque;

pub use super::types::Step;

/// A partition's plan: its steps from offset 0 to `end`, then the log
/// start moved to `log_start`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The steps, in offset order.
    pub steps: VecDeque<Step>,
    /// The log start to set (DeleteRecords) once written.
    pub log_start: i64,
    /// The end offset once written.
    pub end: i64,
}

impl Layout {
    /// Transactions the layout takes (one per reproduced gap).
    pub fn transactions(&self) -> usize {
        self.steps.iter().filter(|s| s.is_transaction()).count()
    }

    /// Placeholder records it writes.
    pub fn placeholders(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match *s {
                Step::Below { count, .. } | Step::Abort { count, .. } | Step::Erased { count, .. } => count,
                Step::Commit { placeholder, .. } => u64::from(placeholder),
                Step::Records { .. } => 0,
            })
            .sum()
    }

    /// The step that ends at `at`, if one does.
    pub fn step_ending_at(&self, at: i64) -> Option<Step> {
        self.steps.iter().find(|s| s.end() == at).copied()
    }

    /// The steps not yet done when the partition's end is `at` (a rerun
    /// after a kill): those after the step that ends there, or the rest of
    /// a plain step (records or placeholders) `at` falls inside. `None`
    /// when `at` is inside a transaction's offsets (what is there is not
    /// the plan's).
    pub fn after(&self, at: i64) -> Option<VecDeque<Step>> {
        if at == 0 {
            return Some(self.steps.clone());
        }
        for (i, s) in self.steps.iter().enumerate() {
            let rest = || self.steps.iter().skip(i + 1).copied();
            if s.end() == at {
                return Some(rest().collect());
            }
            let left = (s.end() - at) as u64;
            let partial = match *s {
                Step::Records { first, .. } if first < at && at < s.end() => Step::Records {
                    first: at,
                    count: left,
                },
                Step::Below { first, .. } if first < at && at < s.end() => Step::Below {
                    first: at,
                    count: left,
                },
                Step::Erased { first, .. } if first < at && at < s.end() => Step::Erased {
                    first: at,
                    count: left,
                },
                _ => continue,
            };
            return Some(std::iter::once(partial).chain(rest()).collect());
        }
        None
    }
}

/// A gap no write can reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a gap of one offset at offset {offset} has no record before it to carry its marker")]
pub struct Unreproducible {
    /// Where.
    pub offset: i64,
}

/// Plans a partition whose records to restore are at `wanted` and whose
/// erased records were at `erased` (both runs of `[first, count]`, in
/// order, disjoint, inside `[log_start, end)`), with the source's log start
/// and end.
///
/// # Errors
/// A gap of one offset at offset 0.
pub fn layout(
    wanted: &[[i64; 2]],
    erased: &[[i64; 2]],
    log_start: i64,
    end: i64,
) -> Result<Layout, Unreproducible> {
    let mut steps: VecDeque<Step> = VecDeque::new();
    if log_start > 0 {
        steps.push_back(Step::Below {
            first: 0,
            count: log_start as u64,
        });
    }
    let mut runs: Vec<Step> = wanted
        .iter()
        .filter(|r| r[1] > 0)
        .map(|&[first, count]| Step::Records {
            first,
            count: count as u64,
        })
        .chain(
            erased
                .iter()
                .filter(|r| r[1] > 0)
                .map(|&[first, count]| Step::Erased {
                    first,
                    count: count as u64,
                }),
        )
        .collect();
    runs.sort_by_key(Step::first);
    let mut at = log_start;
    for step in runs {
        let first = step.first();
        if first > at {
            gap(&mut steps, at, first - at)?;
        }
        steps.push_back(step);
        at = step.end();
    }
    if end > at {
        gap(&mut steps, at, end - at)?;
    }
    Ok(Layout {
        steps,
        log_start,
        end: end.max(at),
    })
}

/// Fills the gap `[first, first + len)` after `steps`.
fn gap(steps: &mut VecDeque<Step>, first: i64, len: i64) -> Result<(), Unreproducible> {
    if len >= 2 {
        steps.push_back(Step::Abort {
            first,
            count: (len - 1) as u64,
        });
        return Ok(());
    }
    // One offset: the record before it commits, its marker takes the gap.
    let placeholder = match steps.back_mut() {
        Some(Step::Records { count, .. }) => {
            *count -= 1;
            false
        }
        Some(Step::Below { count, .. } | Step::Erased { count, .. }) => {
            *count -= 1;
            true
        }
        _ => return Err(Unreproducible { offset: first }),
    };
    if matches!(
        steps.back(),
        Some(Step::Records { count: 0, .. } | Step::Below { count: 0, .. } | Step::Erased { count: 0, .. })
    ) {
        steps.pop_back();
    }
    steps.push_back(Step::Commit {
        offset: first - 1,
        placeholder,
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use Step::*;

    fn steps(l: &Layout) -> Vec<Step> {
        l.steps.iter().copied().collect()
    }

    #[test]
    fn a_log_without_gaps_is_one_plain_run() {
        let l = layout(&[[0, 10]], &[], 0, 10).unwrap();
        assert_eq!(steps(&l), vec![Records { first: 0, count: 10 }]);
        assert_eq!((l.transactions(), l.placeholders()), (0, 0));
    }

    #[test]
    fn each_gap_takes_a_commit_or_an_abort_and_steps_tile_the_log() {
        // 0..=2 records, 3 a marker, 4..=6 records, 7..=8 an aborted record
        // and its marker, 9 a record, 10 its transaction's marker.
        let l = layout(&[[0, 3], [4, 3], [9, 1]], &[], 0, 11).unwrap();
        assert_eq!(
            steps(&l),
            vec![
                Records { first: 0, count: 2 },
                Commit {
                    offset: 2,
                    placeholder: false
                },
                Records { first: 4, count: 3 },
                Abort { first: 7, count: 1 },
                Commit {
                    offset: 9,
                    placeholder: false
                },
            ]
        );
        let mut at = 0;
        for s in &l.steps {
            let first = s.first();
            assert_eq!(first, at, "{s:?}");
            at = s.end();
        }
        assert_eq!(at, 11);
        assert_eq!((l.transactions(), l.placeholders()), (3, 1));
    }

    #[test]
    fn a_log_start_is_placeholders_then_delete_records() {
        let l = layout(&[[5, 2]], &[], 5, 7).unwrap();
        assert_eq!(
            steps(&l),
            vec![Below { first: 0, count: 5 }, Records { first: 5, count: 2 }]
        );
        // A one-offset gap at the log start: the last placeholder commits.
        let l = layout(&[[6, 2]], &[], 5, 8).unwrap();
        assert_eq!(
            steps(&l),
            vec![
                Below { first: 0, count: 4 },
                Commit {
                    offset: 4,
                    placeholder: true
                },
                Records { first: 6, count: 2 }
            ]
        );
        assert_eq!(l.log_start, 5);
    }

    #[test]
    fn only_a_one_offset_gap_at_zero_cannot_be_reproduced() {
        assert_eq!(layout(&[[1, 3]], &[], 0, 4), Err(Unreproducible { offset: 0 }));
        assert!(layout(&[[2, 3]], &[], 0, 5).is_ok(), "two offsets: an abort");
        // An empty log with a gap: an abort, or nothing.
        assert_eq!(
            steps(&layout(&[], &[], 0, 3).unwrap()),
            vec![Abort { first: 0, count: 2 }]
        );
        assert_eq!(steps(&layout(&[], &[], 0, 0).unwrap()), vec![]);
    }

    #[test]
    fn a_rerun_goes_on_after_the_last_step_it_finished() {
        let l = layout(&[[0, 3], [4, 3], [9, 1]], &[], 0, 11).unwrap();
        assert_eq!(l.after(0).unwrap().len(), 5);
        assert_eq!(l.after(7).unwrap().front(), Some(&Abort { first: 7, count: 1 }));
        assert_eq!(l.after(11).unwrap().len(), 0);
        assert_eq!(l.after(8), None, "inside the abort");
        // Inside a run of plain records: the rest of it, then the steps after.
        let rest = l.after(5).unwrap();
        assert_eq!(rest.front(), Some(&Records { first: 5, count: 2 }));
        assert_eq!(rest.len(), 3);
        assert_eq!(l.after(1).unwrap().front(), Some(&Records { first: 1, count: 1 }));
    }

    #[test]
    fn erased_records_become_kept_placeholders_and_carry_a_one_offset_gap() {
        // Records 0..3, 3 erased, a marker at 4, records 5..7, 7..9 erased.
        let l = layout(&[[0, 3], [5, 2]], &[[3, 1], [7, 2]], 0, 9).unwrap();
        assert_eq!(
            steps(&l),
            vec![
                Records { first: 0, count: 3 },
                Commit {
                    offset: 3,
                    placeholder: true
                },
                Records { first: 5, count: 2 },
                Erased { first: 7, count: 2 },
            ]
        );
        assert_eq!(l.placeholders(), 3);
        assert_eq!(l.after(8).unwrap().front(), Some(&Erased { first: 8, count: 1 }));
    }
}
