//! `forget`: remove snapshots by a retention policy, with restic's
//! semantics (restic's `forget` documentation is the reference).
//!
//! Snapshots are grouped (by cluster/source, and optionally by the topics
//! they hold and their tags); in each group, newest first, a snapshot is
//! kept when any rule wants it:
//!
//! - `--keep-last n`: the n newest;
//! - `--keep-hourly|daily|weekly|monthly|yearly n`: for the last n hours
//!   (days, ISO weeks, months, years) that have snapshots, the newest of
//!   each; when fewer such periods exist than n, the oldest snapshot of the
//!   group is kept too (as restic does). `-1` means unlimited;
//! - `--keep-within D`: every snapshot newer than D (`1y5m7d2h`) before the
//!   group's newest snapshot;
//! - `--keep-tag T`: every snapshot with tag T.
//!
//! Periods are calendar periods in UTC (jiff's calendar), not in the local
//! time zone as restic's are: a repository is shared by hosts in different
//! zones (a laptop, a CronJob whose zone is UTC) and must be bucketed the
//! same on each, so `forget --dry-run` on one host shows what a scheduled
//! `forget` elsewhere will do. Only snapshot files are removed; `prune`
//! frees the data no remaining snapshot references.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::Repository;
use crate::repo::snapshot::Snapshot;

/// A duration in calendar units, as restic's `--keep-within` takes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CalendarDuration {
    /// Years.
    pub years: i64,
    /// Months.
    pub months: i64,
    /// Days.
    pub days: i64,
    /// Hours.
    pub hours: i64,
}

impl std::str::FromStr for CalendarDuration {
    type Err = Error;

    /// Parses `1y5m7d2h` (any subset, in any order).
    fn from_str(s: &str) -> Result<Self> {
        let mut d = CalendarDuration::default();
        let mut num = String::new();
        let bad = || Error::bad_value("duration", s, "a form like 1y5m7d2h");
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => d.years += n,
                'm' => d.months += n,
                'd' => d.days += n,
                'h' => d.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || s.trim().is_empty() {
            return Err(bad());
        }
        Ok(d)
    }
}

/// A retention policy; counts of 0 are off, -1 unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Newest n snapshots.
    pub last: i64,
    /// Newest of each of the last n hours.
    pub hourly: i64,
    /// Days.
    pub daily: i64,
    /// ISO weeks.
    pub weekly: i64,
    /// Months.
    pub monthly: i64,
    /// Years.
    pub yearly: i64,
    /// Everything newer than this before the group's newest snapshot.
    pub within: Option<CalendarDuration>,
    /// Snapshots with any of these tags.
    pub tags: Vec<String>,
}

impl Policy {
    /// Whether no rule is set (then nothing is removed).
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// The UTC calendar date and time of a Unix time (seconds). Out of
/// jiff's range (beyond the years -9999..=9999) it clamps to the range's
/// end: no snapshot is that old or new.
fn civil(t: i64) -> jiff::civil::DateTime {
    let ts = jiff::Timestamp::from_second(t).unwrap_or(if t < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    ts.to_zoned(jiff::tz::TimeZone::UTC).datetime()
}

/// A calendar date as `(year, month, day)`.
fn ymd(dt: jiff::civil::DateTime) -> (i64, i64, i64) {
    (i64::from(dt.year()), i64::from(dt.month()), i64::from(dt.day()))
}

/// Time in seconds since the epoch (UTC) minus a calendar duration, as
/// Go's `AddDate` (restic) does it: years and months shift the month, days
/// past its end roll over (2026-03-31 minus a month is 2026-03-03, where
/// jiff's own span arithmetic would clamp to 2026-02-28). A result outside
/// the calendar's range is the range's start: everything is within it.
fn minus(t: i64, d: &CalendarDuration) -> i64 {
    let dt = civil(t);
    let secs = t.rem_euclid(86_400);
    let month0 = i64::from(dt.year()) * 12 + i64::from(dt.month()) - 1 - d.years * 12 - d.months;
    let shifted = i16::try_from(month0.div_euclid(12))
        .ok()
        .and_then(|y| jiff::civil::Date::new(y, (month0.rem_euclid(12) + 1) as i8, 1).ok())
        .and_then(|first| {
            first
                .checked_add(
                    jiff::Span::new()
                        .try_days(i64::from(dt.day()) - 1 - d.days)
                        .ok()?,
                )
                .ok()
        })
        .and_then(|day| day.to_zoned(jiff::tz::TimeZone::UTC).ok());
    match shifted {
        Some(z) => z.timestamp().as_second() + secs - d.hours * 3600,
        None => i64::MIN,
    }
}

/// One snapshot as the policy sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Id.
    pub id: Id,
    /// Seconds since the epoch.
    pub time: i64,
    /// Tags.
    pub tags: Vec<String>,
}

/// Applies a policy to one group; returns per snapshot (in the order
/// given) the reasons it is kept (empty: removed).
pub fn apply(list: &[Candidate], p: &Policy) -> Vec<Vec<String>> {
    let mut order: Vec<usize> = (0..list.len()).collect();
    // Newest first; ties keep their order.
    order.sort_by(|&a, &b| {
        let (ta, tb) = (
            list.get(a).map_or(0, |c| c.time),
            list.get(b).map_or(0, |c| c.time),
        );
        tb.cmp(&ta)
    });
    let mut reasons = vec![Vec::new(); list.len()];
    if p.is_empty() {
        for r in &mut reasons {
            r.push("policy is empty".to_string());
        }
        return reasons;
    }
    type Bucker = fn(i64, usize) -> i64;
    let hour: Bucker = |t, _| {
        let dt = civil(t);
        let (y, m, d) = ymd(dt);
        ((y * 100 + m) * 100 + d) * 100 + i64::from(dt.hour())
    };
    let day: Bucker = |t, _| {
        let (y, m, d) = ymd(civil(t));
        (y * 100 + m) * 100 + d
    };
    let week: Bucker = |t, _| {
        let w = civil(t).date().iso_week_date();
        i64::from(w.year()) * 100 + i64::from(w.week())
    };
    let month: Bucker = |t, _| {
        let (y, m, _) = ymd(civil(t));
        y * 100 + m
    };
    let year: Bucker = |t, _| i64::from(civil(t).year());
    let always: Bucker = |_, nr| nr as i64;
    let mut buckets: [(i64, Bucker, Option<i64>, &str); 6] = [
        (p.last, always, None, "last snapshot"),
        (p.hourly, hour, None, "hourly snapshot"),
        (p.daily, day, None, "daily snapshot"),
        (p.weekly, week, None, "weekly snapshot"),
        (p.monthly, month, None, "monthly snapshot"),
        (p.yearly, year, None, "yearly snapshot"),
    ];
    let latest = order.first().and_then(|&i| list.get(i)).map_or(0, |c| c.time);
    let n = order.len();
    for (nr, &i) in order.iter().enumerate() {
        let Some(cur) = list.get(i) else { continue };
        let Some(why) = reasons.get_mut(i) else { continue };
        if let Some(t) = p.tags.iter().find(|t| cur.tags.contains(t)) {
            why.push(format!("has tag {t}"));
        }
        if let Some(d) = &p.within {
            if cur.time > minus(latest, d) {
                why.push(format!("within {}y{}m{}d{}h", d.years, d.months, d.days, d.hours));
            }
        }
        for b in &mut buckets {
            if b.0 > 0 || b.0 == -1 {
                let val = (b.1)(cur.time, nr);
                let new_period = b.2 != Some(val);
                if new_period || nr == n - 1 {
                    why.push(if new_period {
                        b.3.to_string()
                    } else {
                        format!("oldest {}", b.3)
                    });
                    b.2 = Some(val);
                    if b.0 > 0 {
                        b.0 -= 1;
                    }
                }
            }
        }
    }
    reasons
}

/// What `forget` groups snapshots by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupBy {
    /// The source (cluster id, or stream name) and kind.
    pub cluster: bool,
    /// The topics a Kafka snapshot holds.
    pub topics: bool,
    /// The tag set.
    pub tags: bool,
}

impl std::str::FromStr for GroupBy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut g = GroupBy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "cluster" | "source" => g.cluster = true,
                "topics" => g.topics = true,
                "tags" => g.tags = true,
                _ => {
                    return Err(Error::bad_value("grouping", part, "cluster, topics or tags"));
                }
            }
        }
        Ok(g)
    }
}

/// One snapshot's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Snapshot id.
    pub id: Id,
    /// Its time.
    pub time: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Why it is kept (empty when removed).
    pub reasons: Vec<String>,
}

/// One group's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// The group key (`cluster=…`, `topics=…`, `tags=…`).
    pub key: BTreeMap<String, String>,
    /// Kept snapshots, newest first.
    pub keep: Vec<Verdict>,
    /// Removed snapshots, newest first.
    pub remove: Vec<Verdict>,
}

/// What `forget` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    /// Per group.
    pub groups: Vec<GroupReport>,
    /// Snapshot files removed (none on a dry run).
    pub removed: Vec<Id>,
    /// Snapshots the policy would remove that a locked repository keeps
    /// until their retention ends (they stay in their group's `keep`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<crate::repo::retention::Waiting>,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// What to forget.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// The policy.
    pub policy: Policy,
    /// Grouping (default: cluster).
    pub group_by: Option<GroupBy>,
    /// Snapshots to remove explicitly (besides the policy).
    pub ids: Vec<Id>,
    /// Only report.
    pub dry_run: bool,
}

async fn topics_of(repo: &Repository, s: &Snapshot) -> Result<String> {
    if s.kind != crate::image::manifest::KAFKA_KIND {
        return Ok(String::new());
    }
    let root = repo.load_tree(&s.tree).await?;
    let Some(t) = root
        .nodes
        .iter()
        .find(|n| n.name == "topics")
        .and_then(|n| n.subtree)
    else {
        return Ok(String::new());
    };
    let names: Vec<String> = repo
        .load_tree(&t)
        .await?
        .nodes
        .into_iter()
        .map(|n| n.name)
        .collect();
    Ok(names.join(","))
}

fn seconds(s: &Snapshot) -> i64 {
    s.unix_ms().div_euclid(1000)
}

/// Applies the policy (and explicit ids) and removes the snapshot files
/// that no rule keeps. The caller holds an exclusive lock.
///
/// # Errors
/// Storage errors; an explicit id that is not a snapshot.
pub async fn forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    if !opts.dry_run {
        crate::repo::retention::require_delete(repo).await?;
    }
    let snaps = repo.load_snapshots().await?;
    for id in &opts.ids {
        if !snaps.iter().any(|(s, _)| s == id) {
            return Err(Error::NotFound(format!("snapshot {}", id.short())));
        }
    }
    let group_by = opts.group_by.unwrap_or(GroupBy {
        cluster: true,
        ..Default::default()
    });
    // A run's shard parts go with the run's combined snapshot; the policy
    // sees the combined snapshot only (format-spec §15).
    let (parts, snaps): (Vec<_>, Vec<_>) = snaps.into_iter().partition(|(_, s)| s.is_shard_part());
    let mut groups: BTreeMap<BTreeMap<String, String>, Vec<(Id, Snapshot)>> = BTreeMap::new();
    for (id, s) in snaps {
        let mut key = BTreeMap::new();
        if group_by.cluster {
            key.insert("cluster".to_string(), format!("{}:{}", s.kind, s.source));
        }
        if group_by.topics {
            key.insert("topics".to_string(), topics_of(repo, &s).await?);
        }
        if group_by.tags {
            let mut t = s.tags.clone();
            t.sort();
            key.insert("tags".to_string(), t.join(","));
        }
        groups.entry(key).or_default().push((id, s));
    }
    // Each run's parts (a shard's reruns too), by the run's combined snapshot.
    let mut parts_by_run: BTreeMap<(&str, &str), Vec<Id>> = BTreeMap::new();
    for (id, p) in &parts {
        if let Some(key) = p.run_key() {
            parts_by_run.entry(key).or_default().push(*id);
        }
    }
    let run_parts: BTreeMap<Id, Vec<Id>> = groups
        .values()
        .flatten()
        .filter_map(|(id, s)| Some((*id, parts_by_run.get(&s.run_key()?)?.clone())))
        .collect();
    let mut rep = ForgetReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let use_policy = !opts.policy.is_empty();
    for (key, mut members) in groups {
        // Newest first, to the nanosecond (apply keeps the order of ties).
        members.sort_by_key(|(_, s)| std::cmp::Reverse(s.system_time()));
        let cands: Vec<Candidate> = members
            .iter()
            .map(|(id, s)| Candidate {
                id: *id,
                time: seconds(s),
                tags: s.tags.clone(),
            })
            .collect();
        let reasons = if use_policy {
            apply(&cands, &opts.policy)
        } else {
            vec![vec!["not named".to_string()]; cands.len()]
        };
        let mut g = GroupReport {
            key,
            keep: Vec::new(),
            remove: Vec::new(),
        };
        for ((id, s), why) in members.iter().zip(reasons) {
            let named = opts.ids.contains(id);
            let v = Verdict {
                id: *id,
                time: s.time.clone(),
                tags: s.tags.clone(),
                reasons: if named { Vec::new() } else { why },
            };
            if v.reasons.is_empty() {
                g.remove.push(v);
            } else {
                g.keep.push(v);
            }
        }
        rep.groups.push(g);
    }
    hold_locked(repo, &mut rep).await?;
    if !opts.dry_run {
        remove_verdicts(repo, &mut rep, &run_parts).await?;
    }
    Ok(rep)
}

/// Removes every snapshot a group's verdict removes, with its run's parts
/// (and any rerun of a shard it superseded).
async fn remove_verdicts(
    repo: &Repository,
    rep: &mut ForgetReport,
    run_parts: &BTreeMap<Id, Vec<Id>>,
) -> Result<()> {
    let ids: Vec<Id> = rep
        .groups
        .iter()
        .flat_map(|g| g.remove.iter().map(|v| v.id))
        .collect();
    for id in ids {
        repo.remove_file(crate::repo::FileKind::Snapshot, &id).await?;
        rep.removed.push(id);
        for pid in run_parts.get(&id).into_iter().flatten() {
            repo.remove_file(crate::repo::FileKind::Snapshot, pid).await?;
        }
    }
    Ok(())
}

/// In a locked repository, moves each snapshot to remove whose retention
/// has not ended to its group's `keep`, saying until when.
async fn hold_locked(repo: &Repository, rep: &mut ForgetReport) -> Result<()> {
    if repo.lock_policy().is_none() {
        return Ok(());
    }
    for g in &mut rep.groups {
        let mut remove = Vec::new();
        for mut v in std::mem::take(&mut g.remove) {
            let path = crate::repo::FileKind::Snapshot.path(&v.id);
            match crate::repo::retention::locked_until(repo, &path).await? {
                Some(until) => {
                    let w = crate::repo::retention::Waiting::new(path, until);
                    v.reasons.push(format!("locked until {}", w.until));
                    rep.waiting.push(w);
                    g.keep.push(v);
                }
                None => remove.push(v),
            }
        }
        g.remove = remove;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds of a UTC date-time.
    fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
        let date = jiff::civil::date(y as i16, mo as i8, d as i8);
        date.to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second()
            + h * 3600
            + mi * 60
    }

    fn run(times: &[i64], p: &Policy) -> Vec<usize> {
        let cands: Vec<Candidate> = times
            .iter()
            .map(|&t| Candidate {
                id: Id::hash(b"s"),
                time: t,
                tags: Vec::new(),
            })
            .collect();
        apply(&cands, p)
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn calendar_arithmetic_matches_known_dates() {
        assert_eq!(at(1970, 1, 1, 0, 0), 0);
        assert_eq!(ymd(civil(at(2026, 11, 28, 23, 59))), (2026, 11, 28));
        assert_eq!(ymd(civil(-1)), (1969, 12, 31));
        // ISO weeks: 2021-01-03 is in 2020-W53, 2021-01-04 starts 2021-W01,
        // 2024-12-30 is in 2025-W01.
        let week = |t: i64| {
            let w = civil(t).date().iso_week_date();
            (w.year(), w.week())
        };
        assert_eq!(week(at(2021, 1, 3, 12, 0)), (2020, 53));
        assert_eq!(week(at(2021, 1, 4, 0, 0)), (2021, 1));
        assert_eq!(week(at(2024, 12, 30, 0, 0)), (2025, 1));
        assert_eq!(week(at(2026, 11, 28, 0, 0)), (2026, 48));
        // Go's AddDate normalization: 2026-03-31 minus one month is 2026-03-03.
        let d = CalendarDuration {
            months: 1,
            ..Default::default()
        };
        assert_eq!(minus(at(2026, 3, 31, 0, 0), &d), at(2026, 3, 3, 0, 0));
        let d = CalendarDuration {
            years: 1,
            days: 31,
            hours: 2,
            ..Default::default()
        };
        assert_eq!(minus(at(2026, 3, 1, 1, 0), &d), at(2025, 1, 28, 23, 0));
        // Beyond the calendar: everything is within.
        let d = CalendarDuration {
            years: 100_000,
            ..Default::default()
        };
        assert_eq!(minus(at(2026, 3, 1, 0, 0), &d), i64::MIN);
    }

    #[test]
    fn durations_parse_like_restic() {
        let d: CalendarDuration = "1y5m7d2h".parse().unwrap();
        assert_eq!((d.years, d.months, d.days, d.hours), (1, 5, 7, 2));
        assert!("5x".parse::<CalendarDuration>().is_err());
        assert!("7".parse::<CalendarDuration>().is_err());
        assert!("".parse::<CalendarDuration>().is_err());
    }

    /// Snapshots every 6 hours over 10 days, newest first in the table.
    fn six_hourly() -> Vec<i64> {
        (0..40).map(|i| at(2026, 11, 28, 18, 0) - i * 6 * 3600).collect()
    }

    #[test]
    fn keep_policies_match_restics_documented_behaviour() {
        let t = six_hourly();
        let table: Vec<(Policy, Vec<usize>)> = vec![
            // The empty policy keeps everything.
            (Policy::default(), (0..40).collect()),
            // keep-last 3: the three newest.
            (
                Policy {
                    last: 3,
                    ..Default::default()
                },
                vec![0, 1, 2],
            ),
            // keep-daily 3: the newest of each of the last 3 days (18:00).
            (
                Policy {
                    daily: 3,
                    ..Default::default()
                },
                vec![0, 4, 8],
            ),
            // keep-hourly 5: every snapshot is its own hour.
            (
                Policy {
                    hourly: 5,
                    ..Default::default()
                },
                vec![0, 1, 2, 3, 4],
            ),
            // keep-daily 100 with only 10 days: one per day, and the oldest
            // snapshot too (not enough periods).
            (
                Policy {
                    daily: 100,
                    ..Default::default()
                },
                vec![0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 39],
            ),
            // keep-daily unlimited: one per day, plus the oldest.
            (
                Policy {
                    daily: -1,
                    ..Default::default()
                },
                vec![0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 39],
            ),
            // keep-weekly 2: 2026-11-28 is a Saturday of week 48; the newest
            // of week 47 is Sunday 2026-11-22 18:00 (index 24).
            (
                Policy {
                    weekly: 2,
                    ..Default::default()
                },
                vec![0, 24],
            ),
            // keep-within 2d: newer than 2 days before the newest snapshot
            // (strictly), so 18:00 two days earlier is not kept.
            (
                Policy {
                    within: Some(CalendarDuration {
                        days: 2,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                (0..8).collect(),
            ),
            // Rules add up: last 2 + daily 2.
            (
                Policy {
                    last: 2,
                    daily: 2,
                    ..Default::default()
                },
                vec![0, 1, 4],
            ),
            // keep-monthly 1 and keep-yearly 1: the newest only.
            (
                Policy {
                    monthly: 1,
                    yearly: 1,
                    ..Default::default()
                },
                vec![0],
            ),
        ];
        for (p, want) in table {
            assert_eq!(run(&t, &p), want, "{p:?}");
        }
    }

    #[test]
    fn monthly_and_yearly_buckets_cross_year_boundaries() {
        let t = vec![
            at(2026, 1, 2, 0, 0),
            at(2025, 12, 31, 23, 0),
            at(2025, 12, 1, 0, 0),
            at(2025, 11, 30, 0, 0),
            at(2024, 6, 1, 0, 0),
        ];
        let p = Policy {
            monthly: 3,
            ..Default::default()
        };
        assert_eq!(run(&t, &p), vec![0, 1, 3]);
        let p = Policy {
            yearly: 5,
            ..Default::default()
        };
        assert_eq!(run(&t, &p), vec![0, 1, 4]);
    }

    #[test]
    fn tags_keep_without_counting() {
        let t = six_hourly();
        let mut cands: Vec<Candidate> = t
            .iter()
            .map(|&x| Candidate {
                id: Id::hash(b"s"),
                time: x,
                tags: Vec::new(),
            })
            .collect();
        cands[30].tags.push("release".into());
        let p = Policy {
            last: 1,
            tags: vec!["release".into()],
            ..Default::default()
        };
        let kept: Vec<usize> = apply(&cands, &p)
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(kept, vec![0, 30]);
    }
}
