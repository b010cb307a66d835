"""Which backup sets a retention policy keeps: restic's `forget --keep-*`, per VM.

Pure functions: given one VM's points in time (set id, time, good or not), the policy, the
job's time zone and the present moment, `apply_policy` returns keep or remove for each set
and the rule(s) that kept it. The semantics are restic's (docs/lifecycle.md):

- the sets are walked newest first; `keep_last N` keeps the newest N;
- `keep_hourly/daily/weekly/monthly/yearly N` keep the newest set of each of the last N
  hours/days/ISO weeks/months/years that have sets, bucketed in the job's time zone;
- `keep_within D` keeps every set newer than the VM's newest good set minus D;
- failed and partial backups never count toward a rule; they are kept `keep_failed_days`
  (from now) and removed after;
- `keep_min N` keeps the newest N good sets whatever the other rules say.

With no keep rule at all every good set is kept. `plan_sets` combines the VMs: a set is
removed only when no VM in it keeps it (a set is the unit a pool deletes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bingobackup.specs.retention import RetentionPolicy


@dataclass(frozen=True)
class SetPoint:
    """One point in time of one VM: a backup set holding it, and whether the VM's backup there
    is good (failed and partial backups never count toward a keep rule)."""

    set_id: str
    time: datetime  # aware; when the set started
    good: bool


@dataclass(frozen=True)
class Verdict:
    """What the policy says about one set of one VM."""

    point: SetPoint
    keep: bool
    reasons: tuple[str, ...]  # the rules that keep it; for a removed set, why it goes

    @property
    def set_id(self) -> str:
        return self.point.set_id


Bucket = Callable[[datetime], object]

# (policy field, how the rule is named in a verdict, the bucket of a local time)
_BUCKET_RULES: tuple[tuple[str, str, Bucket], ...] = (
    ("keep_hourly", "hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("keep_daily", "daily", lambda t: (t.year, t.month, t.day)),
    ("keep_weekly", "weekly", lambda t: t.isocalendar()[:2]),
    ("keep_monthly", "monthly", lambda t: (t.year, t.month)),
    ("keep_yearly", "yearly", lambda t: t.year),
)


def newest_first(points: Iterable[SetPoint]) -> list[SetPoint]:
    return sorted(points, key=lambda p: (p.time, p.set_id), reverse=True)


def apply_policy(
    points: Iterable[SetPoint], policy: RetentionPolicy, timezone: str, now: datetime
) -> list[Verdict]:
    """One VM's sets, newest first, each with keep/remove and the rules that kept it."""
    ordered = newest_first(points)
    zone = ZoneInfo(timezone)
    good = [p for p in ordered if p.good]
    reasons: dict[str, list[str]] = {p.set_id: [] for p in ordered}

    if not policy.has_keep_rule:
        for point in good:
            reasons[point.set_id].append("no keep rule")
    else:
        rules: list[tuple[str, int, Bucket]] = []
        if policy.keep_last is not None:
            rules.append(("last", policy.keep_last, lambda t: None))  # every set is its own bucket
        for field, name, bucket in _BUCKET_RULES:
            count = getattr(policy, field)
            if count is not None:
                rules.append((name, count, bucket))
        left = [count for _, count, _ in rules]
        last_bucket: list[object] = [object() for _ in rules]
        for index, point in enumerate(good):
            local = point.time.astimezone(zone)
            for rule, (name, _, bucket) in enumerate(rules):
                if left[rule] == 0:
                    continue
                value = (index,) if name == "last" else bucket(local)
                if value != last_bucket[rule]:
                    last_bucket[rule] = value
                    left[rule] -= 1
                    reasons[point.set_id].append(name)
        within = policy.within
        if within is not None and good:
            since = within.before(good[0].time)
            for point in good:
                if point.time > since:
                    reasons[point.set_id].append(f"within {policy.keep_within}")

    for point in good[: policy.keep_min]:
        if not reasons[point.set_id]:
            reasons[point.set_id].append(f"keep_min {policy.keep_min}")

    failed_until = now - timedelta(days=policy.keep_failed_days)
    verdicts = []
    for point in ordered:
        if point.good:
            kept = reasons[point.set_id]
            verdicts.append(Verdict(point, bool(kept), tuple(kept) or ("no rule keeps it",)))
        elif point.time > failed_until:
            verdicts.append(Verdict(point, True, (f"failed, kept {policy.keep_failed_days} days",)))
        else:
            verdicts.append(Verdict(point, False, (f"failed, older than {policy.keep_failed_days} days",)))
    return verdicts


@dataclass(frozen=True)
class SetPlan:
    """The combined decision for one set: kept when any VM in it keeps it."""

    set_id: str
    keep: bool
    kept_for: tuple[str, ...]  # the groups (VMs) that keep it


def plan_sets(verdicts: Mapping[str, list[Verdict]]) -> dict[str, SetPlan]:
    """Per set id, keep or remove, from every group's verdicts (group → its verdicts)."""
    keepers: dict[str, list[str]] = {}
    for group, group_verdicts in verdicts.items():
        for verdict in group_verdicts:
            holders = keepers.setdefault(verdict.set_id, [])
            if verdict.keep:
                holders.append(group)
    return {
        set_id: SetPlan(set_id, bool(holders), tuple(sorted(holders))) for set_id, holders in keepers.items()
    }
