"""The log entry the engine drafts at each Stop, for the operator to edit and confirm.

Drafted once the run is filed (its manifest gives the files, bytes and events per
router; before then they are not known), by :func:`draft_entry` on the engine's
database thread. It says: run number, class and title, who started and stopped
it and when, duration and live time, events and data per router, the
configuration used and what changed since the previous run file by file (from
the ``RunConfig`` rows of both: files added, removed, changed with a few of the
changed lines), the alarms and errors of the run, the hardware excluded during
it and its problems (incomplete data). A run is drafted once: a draft the operator
is editing is never overwritten.
"""

from __future__ import annotations

import difflib
import logging

from django.utils import timezone

from attpcdaq.daq.limits import hms, live_seconds, size_text
from attpcdaq.daq.models import Command, Event, LogEntry, RunConfig, RunMetadata
from attpcdaq.daq.services import STOP_LABEL

from .database import EngineDatabase

log = logging.getLogger(__name__)

__all__ = ["changes_between", "draft_entry", "draft_text"]

#: Changed lines shown per changed file (the run page's diff has them all).
CHANGED_LINES = 6
#: Alarms and errors named at most (then "N more").
EVENTS_NAMED = 10


def _who(user) -> str:
    return user.get_username() if user else "the engine"


def _at(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}" if moment else "not recorded"


def _files(run: RunMetadata) -> dict[str, dict[str, dict]]:
    """Per server, its files by name (``{"filename", "sha256", "text"}``)."""
    return {rc.server_name: {f["filename"]: f for f in rc.file_list}
            for rc in RunConfig.objects.filter(run=run)}


def _changed_lines(old: str, new: str) -> list[str]:
    lines = [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(),
                                                   lineterm="", n=0)
             if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    shown = [f"      {line.rstrip()[:160]}" for line in lines[:CHANGED_LINES]]
    if len(lines) > CHANGED_LINES:
        shown.append(f"      … {len(lines) - CHANGED_LINES} more changed line(s)")
    return shown


def changes_between(previous: RunMetadata, run: RunMetadata) -> list[str]:
    """What changed in the configuration files from ``previous`` to ``run``, file by
    file, per server; [] when nothing did."""
    before, after = _files(previous), _files(run)
    out = []
    for server in sorted(set(before) | set(after)):
        if server not in after:
            out.append(f"  {server}: took part in run {previous.run_number}, not in this run")
            continue
        if server not in before:
            out.append(f"  {server}: new in this run (no configuration recorded for it in "
                       f"run {previous.run_number})")
            continue
        old, new = before[server], after[server]
        for name in sorted(set(old) | set(new)):
            if name not in new:
                out.append(f"  {server}: {name} removed")
            elif name not in old:
                out.append(f"  {server}: {name} added")
            elif old[name]["sha256"] != new[name]["sha256"] or old[name]["text"] != \
                    new[name]["text"]:
                out.append(f"  {server}: {name} changed")
                out += _changed_lines(old[name]["text"], new[name]["text"])
    return out


def _previous(run: RunMetadata) -> RunMetadata | None:
    """The latest earlier run of the experiment that recorded its configuration."""
    return (RunMetadata.objects.filter(experiment_id=run.experiment_id,
                                       run_number__lt=run.run_number,
                                       loaded_configs__isnull=False)
            .distinct().order_by("-run_number").first())


def _data_lines(run: RunMetadata) -> list[str]:
    manifest = run.manifest if isinstance(run.manifest, dict) else {}
    routers = manifest.get("routers") if isinstance(manifest.get("routers"), dict) else {}
    if not routers:
        return ["  no data filed"]
    lines = []
    for name, entry in sorted(routers.items()):
        entry = entry if isinstance(entry, dict) else {}
        files = entry.get("files") or []
        from .filing import summarize  # filing imports this module

        counts = summarize({name: entry})
        events = ", ".join(f"{board} {counted['events']:,} events"
                           for board, counted in counts.items()) or "no events counted"
        lines.append(f"  {name}: {len(files)} file(s), {size_text(entry.get('bytes', 0))}; "
                     f"{events}")
    return lines


def _stopped_how(run: RunMetadata) -> str:
    if run.stopped_by_id:
        return f"by {run.stopped_by.get_username()}"
    stop = (Command.objects.filter(run=run, label__startswith=STOP_LABEL)
            .order_by("created").first())
    if stop is not None and stop.user_id is None and "limit" in stop.label:
        return "by the engine, at its limit"
    if run.reason:
        return f"by itself: {run.reason}"
    return "by the engine"


def _limits(run: RunMetadata) -> str:
    parts = []
    if run.limit_seconds:
        parts.append(f"{hms(run.limit_seconds)} live time")
    if run.limit_bytes:
        parts.append(size_text(run.limit_bytes))
    if run.limit_events:
        parts.append(f"{run.limit_events:,} events per CoBo")
    if not parts:
        return ""
    return "Limits: " + ", ".join(parts) + ("; restarts by itself" if run.auto_restart else "")


def _excluded(run: RunMetadata) -> list[str]:
    coverage = run.coverage if isinstance(run.coverage, dict) else {}
    lines = []
    for kind, label in (("boards", ""), ("routers", "router ")):
        group = coverage.get(kind) if isinstance(coverage.get(kind), dict) else {}
        for name, entry in sorted(group.items()):
            entry = entry if isinstance(entry, dict) else {}
            spans = [s for s in entry.get("excluded") or [] if isinstance(s, dict)]
            if not entry.get("took_part", True) and spans:
                why = f": {spans[0]['reason']}" if spans[0].get("reason") else ""
                lines.append(f"  {label}{name}: not in the run (excluded{why})")
            elif not entry.get("took_part", True):
                lines.append(f"  {label}{name}: not in the run")
    return lines


def draft_text(run: RunMetadata) -> str:
    """The draft of ``run``'s log entry."""
    what = " · ".join(p for p in (run.run_class.name if run.run_class else "",
                                  f"“{run.title}”" if run.title else "") if p)
    lines = [f"Run {run.run_number}" + (f" — {what}" if what else "")]
    lines.append(f"Started {_at(run.start_datetime)} by {_who(run.started_by)}; stopped "
                 f"{_at(run.stop_datetime)} {_stopped_how(run)}.")
    duration = hms(run.duration.total_seconds()) if run.duration else "not recorded"
    lines.append(f"Duration {duration}, live time {hms(live_seconds(run))}"
                 + (f" (paused {hms(run.paused_seconds)})" if run.paused_seconds >= 1 else "")
                 + ".")
    if limits := _limits(run):
        lines.append(limits)
    if run.comment:
        lines.append(f"Comment: {run.comment}")
    lines += ["", "Data:", *_data_lines(run)]
    configs = run.configs if isinstance(run.configs, dict) else {}
    lines += ["", "Configuration:"]
    lines += [f"  {server}: {config or 'none recorded'}"
              for server, config in sorted(configs.items())] or ["  none recorded"]
    previous = _previous(run)
    if previous is None:
        lines.append("No earlier run of the experiment recorded its configuration files.")
    elif not RunConfig.objects.filter(run=run).exists():
        lines.append("This run recorded no configuration files to compare.")
    else:
        changed = changes_between(previous, run)
        lines.append(f"Changed since run {previous.run_number}:" if changed else
                     f"No configuration file changed since run {previous.run_number}.")
        lines += changed
    events = list(Event.objects.filter(run=run, level__in=[Event.Level.ALARM,
                                                           Event.Level.ERROR])
                  .order_by("time", "pk"))
    if events:
        lines += ["", f"Alarms and errors ({len(events)}):"]
        lines += [f"  {timezone.localtime(e.time):%H:%M:%S} {e.level} {e.source}: "
                  f"{e.message[:300]}" for e in events[:EVENTS_NAMED]]
        if len(events) > EVENTS_NAMED:
            lines.append(f"  … {len(events) - EVENTS_NAMED} more")
    excluded = _excluded(run)
    if excluded:
        lines += ["", "Excluded:", *excluded]
    problems = [p for p in run.problems if isinstance(p, str)] \
        if isinstance(run.problems, list) else []
    if run.incomplete or problems:
        lines += ["", "Incomplete data:" if run.incomplete else "Problems:"]
        lines += [f"  {p}" for p in problems] or ["  (no detail recorded)"]
    return "\n".join(lines)


def draft_entry(run_pk: int) -> LogEntry | None:
    """Draft the log entry of a stopped run; None for a run that is not a stopped one,
    or that has its draft already."""
    run = (RunMetadata.objects.select_related("run_class", "started_by", "stopped_by")
           .filter(pk=run_pk, status=RunMetadata.Status.STOPPED).first())
    if run is None:
        return None
    if LogEntry.objects.filter(run=run, drafted=True).exists():
        return None  # drafted once: what the operator made of it stays
    return LogEntry.objects.create(run=run, drafted=True, text=draft_text(run),
                                   time=run.stop_datetime or timezone.now())


async def draft_after_filing(db: EngineDatabase, run: RunMetadata) -> None:
    """Draft the entry of a run just filed; a failure is an event of the run, once (the
    run is filed once), never a filing error."""
    try:
        await db.run(draft_entry, run.pk)
    except Exception as exc:  # the run is filed: the draft is no reason to refile it
        log.exception("drafting the log entry of run %s failed", run.run_number)
        await db.event("error", "logbook", f"the log entry of run {run.run_number} could "
                       f"not be drafted: {type(exc).__name__}: {exc}", run.pk)
