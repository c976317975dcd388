"""Filing a closed run: its data into its own folder, counted, its configuration backed up.

Crash-safe and idempotent: ``RunMetadata.filed`` turns true only once every
router's files and every server's configuration are where they belong, and
the remote operations finish what an interrupted earlier attempt began. So a
run left unfiled by a crash or an error is simply filed again, nothing lost
or duplicated.

**When.** Only once the data is complete: every board of the run has left
Running and Paused, or is excluded (``ECCServer.excluded``), and every file of
each router has stopped growing (two listings half a second apart agree). The
boards of the run are those of ``run.coverage["boards"]`` that took part, or,
for runs recorded without coverage, every enabled server named in
``run.configs``. Until then each attempt (after Stop, then every router check)
records why it waits in ``filing_error`` (it starts with :data:`WAITING`).

**Steps, per router of the run** (``coverage["routers"]`` that took part, else
every router), routers concurrently: wait for the files to settle, move them
(``RemoteHost.file_run``), check every file listed before is there with its
size, count the frames of each file by its headers where it lies
(:mod:`attpcdaq.remote.scanning`), then stamp every file again (size and
mtime): a file that changed after it was counted is counted again, and named.
A router whose boards include one excluded while still Running keeps receiving
its data: its files are moved as they are, and what it writes afterwards stays
in its working directory (named in the run's problems).

**Manifest** (``run.manifest``): ``routers[name] = {"directory", "bytes",
"files": [{"router", "name", "bytes", "size", "mtime_ns", "frames",
"other_frames", "counts": [{"cobo", "asad", "frames", "first_event",
"last_event"}], "error"}]}``, ``configs[server] = {"directory", "files"}``, and
``events["CoBo[N]"] = {"events", "first_event", "last_event", "asads": {"M":
{"frames", "first_event", "last_event"}}}`` (a CoBo's events are the frames of
its fullest AsAd; first and last follow the files in the order written).

**Incomplete.** A run is marked ``incomplete`` with one sentence per problem in
``run.problems`` (added to any the run keeper wrote) when: a router of the run
was offline (its outages) or a board or router was excluded during the run; a
board of the run has no data file; a CoBo is *short*, i.e. has fewer than
:data:`SHORT_FRACTION` (99 %) of the events of the fullest CoBo and more than
:data:`SHORT_SLACK` events fewer (boards that start or stop one trigger apart are
not short); an AsAd is short of its CoBo's events by the same rule; a frame is
truncated or malformed; a file changed after filing; an excluded router could
not be filed; an excluded board's router kept receiving data.

**Errors.** Any exception is recorded on the run (``filing_error``, shown on its
page and in Start's refusal) and raises one Event per distinct message, not one
per attempt; the next attempt retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from attpcdaq.daq.models import DataRouter, ECCServer, RunMetadata
from attpcdaq.get import ConfigId
from attpcdaq.remote import FileInfo, HostPool, RemoteError, RemoteFileNotFound
from attpcdaq.remote.backup import choose_config_files
from attpcdaq.remote.names import parse_graw_name, run_dir
from attpcdaq.remote.results import FilingResult
from attpcdaq.remote.scanning import ScannedFile, scan_files, stamp_files

from .database import EngineDatabase
from .datarouters import RouterInfo, RouterWatcher, host_for
from .logdraft import draft_after_filing

__all__ = ["WAITING", "FilingError", "RunFiler", "coverage_problems", "missing_boards",
           "short_counts", "summarize"]

log = logging.getLogger(__name__)
SETTLE_SECONDS = 0.5  # a router may still be closing its files when Stop returns
#: A CoBo (or AsAd) with fewer events than this share of the fullest one's is short...
SHORT_FRACTION = 0.99
#: ... when it also misses more than this many: boards started a trigger apart are not.
SHORT_SLACK = 2
#: How a filing that waits for the data to be complete begins its ``filing_error``.
WAITING = "waiting for the data to be complete: "
#: File-level problems (malformed, changed, unreadable) named one by one, per kind.
MAX_NAMED_FILES = 10
_LIVE = (ECCServer.RUNNING, ECCServer.PAUSED)


class FilingError(Exception):
    """Filing could not be completed; the message names the router or server."""


@dataclass
class _Board:
    """A board (ECC server) of the run, as the database has it now."""

    name: str
    state: int
    online: bool
    excluded: bool
    #: Its data senders (CoBo[N], Mutant[master]) and the routers they send to.
    sources: list[tuple[str, str | None]]

    @property
    def live(self) -> bool:
        return self.state in _LIVE


@dataclass
class _Survey:
    """What filing a run needs to know of the database before it touches anything."""

    boards: list[_Board]
    routers: list[tuple[RouterInfo, bool]]  # (router, excluded now)

    def waiting(self) -> list[str]:
        """The boards that keep the run from being filed, in words."""
        return [f"{b.name} is still {ECCServer.STATE_DICT.get(b.state, b.state)}"
                + ("" if b.online else " (offline, last seen so)")
                for b in self.boards if b.live and not b.excluded]

    def feeding(self, router: str) -> list[str]:
        """Boards excluded while still acquiring that send to ``router``."""
        return [b.name for b in self.boards if b.live and b.excluded
                and any(r == router for _, r in b.sources)]


@dataclass
class _RouterFiled:
    """One router's part of the manifest, and the problems met filing it."""

    entry: dict
    problems: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)


class RunFiler:
    """Files closed runs, one at a time."""

    def __init__(self, db: EngineDatabase, pool: HostPool, routers: RouterWatcher) -> None:
        self.db = db
        self.pool = pool
        self.routers = routers
        self._lock = asyncio.Lock()
        #: Per run, the filing errors already raised as an Event.
        self._reported: dict[int, set[str]] = {}
        #: Awaited with (run, router name, run directory) once a router's files are
        #: counted and before they are stamped again: a test changes a file there.
        self.after_count: Callable[[RunMetadata, str, str], Awaitable[None]] | None = None

    async def file_pending(self) -> None:
        """File every stopped or aborted run not yet filed (oldest first)."""
        pending = await self.db.run(lambda: list(
            RunMetadata.objects.select_related("experiment").filter(
                filed=False, status__in=[RunMetadata.Status.STOPPED,
                                         RunMetadata.Status.ABORTED])
            .order_by("created")))
        for run in pending:
            await self.file(run)

    async def file(self, run: RunMetadata) -> bool:
        """File one run once its data is complete; record the outcome on it.

        Returns
        -------
        bool
            True once filed; False while it waits for its boards or after an error
            (recorded on the run: the next attempt retries).
        """
        async with self._lock:
            fresh = await self.db.run(lambda: RunMetadata.objects.select_related("experiment")
                                      .filter(pk=run.pk).first())
            if fresh is None or fresh.filed:
                return True
            try:
                survey = await self.db.run(_survey, fresh)
                waiting = survey.waiting()
                if waiting:
                    await self._not_filed(fresh, WAITING + "; ".join(waiting) + ". Stop them, or "
                                          "exclude them, and the run is filed.", "warning")
                    return False
                manifest, problems = await self._file_data(fresh, survey)
                manifest["configs"] = await self._back_up_configs(fresh)
            except Exception as exc:  # recorded on the run, whatever it is
                if not isinstance(exc, FilingError | RemoteError):
                    log.exception("filing run %s failed unexpectedly", fresh.run_number)
                await self._not_filed(fresh, _describe(exc), "error")
                return False
            # Routers shown clean before the run shows filed: whoever sees the one sees both.
            await self.routers.check_all()
            problems = await self.db.run(_finish, fresh.pk, manifest, problems)
            self._reported.pop(fresh.pk, None)
            files = sum(len(r["files"]) for r in manifest["routers"].values())
            await self.db.event("info", "filing", f"run {fresh.run_number} filed: {files} "
                                "file(s)", fresh.pk)
            if problems:
                await self.db.event("warning", "filing", f"run {fresh.run_number} is "
                                    f"incomplete: {'; '.join(problems)}", fresh.pk)
            await draft_after_filing(self.db, fresh)  # the shift logbook's entry of the run
            return True

    async def _not_filed(self, run: RunMetadata, message: str, level: str) -> None:
        """Record why the run is not filed; an Event only for a message not seen before."""
        await self.db.update_run(run.pk, filing_error=message)
        seen = self._reported.setdefault(run.pk, set())
        if message not in seen and message != run.filing_error:
            what = "waits" if message.startswith(WAITING) else "failed"
            await self.db.event(level, "filing", f"filing run {run.run_number} {what}: "
                                f"{message.removeprefix(WAITING)}", run.pk)
        seen.add(message)

    # Data ---------------------------------------------------------------------------
    async def _file_data(self, run: RunMetadata, survey: _Survey) -> tuple[dict, list[str]]:
        """File every router of the run (concurrently); return the manifest and problems."""
        results = await asyncio.gather(*(self._file_router(run, info, excluded, survey)
                                         for info, excluded in survey.routers),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            if len(errors) == 1:
                raise errors[0]
            raise FilingError("; ".join(_describe(e) for e in errors))
        routers = {info.name: r.entry for (info, _), r in zip(survey.routers, results,
                                                                strict=True)}
        events = summarize(routers)
        problems = coverage_problems(run.coverage)
        problems += missing_boards(survey.boards, routers, events)
        problems += short_counts(events)
        problems += [p for r in results for p in r.problems]
        for kind, attr in (("changed after filing", "changed"),
                           ("with a truncated or malformed frame", "bad")):
            named = [n for r in results for n in getattr(r, attr)]
            problems += named[:MAX_NAMED_FILES]
            if len(named) > MAX_NAMED_FILES:
                problems.append(f"{len(named) - MAX_NAMED_FILES:,} more file(s) {kind}")
        return {"routers": routers, "events": events}, problems

    async def _file_router(self, run: RunMetadata, router: RouterInfo, excluded: bool,
                           survey: _Survey) -> _RouterFiled:
        """File one router; an excluded one that cannot be reached is a problem, not an error."""
        try:
            return await self._move_and_count(run, router, survey)
        except RemoteError as exc:
            if not excluded:
                raise
            return _RouterFiled({"directory": "", "files": [], "bytes": 0, "error": str(exc)},
                                [f"router {router.name} (excluded) could not be filed: {exc}"])

    async def _move_and_count(self, run: RunMetadata, router: RouterInfo,
                              survey: _Survey) -> _RouterFiled:
        """Move one router's files into the run folder, check nothing was lost, count them."""
        host = self.routers.host(router)
        workdir = await self.routers.workdir(router)
        feeding = survey.feeding(router.name)
        before = await (host.list_files(workdir) if feeding else _settled(host, workdir))
        try:
            result = await host.file_run(workdir, run.experiment.name, run.run_number)
        except RemoteError:
            if not feeding:
                raise
            # A board still sending re-creates, under the same names, the files an earlier
            # try moved: the run keeps what was moved; the new ones are not the run's.
            _, destination = run_dir(host.name, workdir, run.experiment.name,
                                     run.run_number)
            result = FilingResult(workdir, destination, (),
                                  tuple(await host.list_files(destination)))
            if not result.files:
                raise
        if feeding:
            # A frame the router began writing before the move lands in the moved file:
            # let it land before counting (later frames go to files made anew).
            await asyncio.sleep(SETTLE_SECONDS)
        filed = {f.name: f.size for f in result.files}
        # A board still sending (excluded) makes its files grow up to the move.
        missing = [f"{f.name} ({f.size} B)" for f in before
                   if (filed.get(f.name, -1) < f.size if feeding else filed.get(f.name) != f.size)]
        if missing:
            raise FilingError(f"data router {router.name}: after filing, {len(missing)} "
                              f"file(s) are not in {result.destination} with their size: "
                              f"{', '.join(missing[:5])}")
        done = _RouterFiled({})
        left = await host.list_files(workdir)
        if left and not feeding:
            raise FilingError(f"data router {router.name}: {len(left)} file(s) still in "
                              f"{workdir} after filing")
        if feeding:
            since = (f"; {len(left)} file(s) it wrote since stay in {workdir}" if left else
                     f"; what it writes now stays in {workdir}")
            done.problems.append(
                f"{' and '.join(feeding)} still acquiring when the run was filed (excluded): "
                f"the data router {router.name} received after its files were moved are "
                f"not in this run{since}")
        names = [f.name for f in result.files]
        scanned = await scan_files(host, result.destination, names)
        if self.after_count is not None:
            await self.after_count(run, router.name, result.destination)
        stamps = await stamp_files(host, result.destination, names)
        changed = [n for n in names if scanned[n].stamp is not None
                   and stamps.get(n) != scanned[n].stamp]
        if changed:
            again = await scan_files(host, result.destination, changed)
            for name in changed:
                old, new = scanned[name].stamp, again[name].stamp
                sizes = (f"{old.size:,} bytes when counted, {new.size:,} after" if new
                         else f"{old.size:,} bytes when counted, gone after")
                done.changed.append(f"{name} changed after filing (router {router.name}: "
                                    f"{sizes})")
                scanned[name] = again[name]
        files = []
        for name in names:
            entry, problem = _file_entry(router.name, scanned[name])
            if problem:
                (done.bad if scanned[name].scan is not None else done.problems).append(problem)
            if entry is not None:
                files.append(entry)
        done.entry = {"directory": result.destination, "files": files,
                      "bytes": sum(f["bytes"] for f in files)}
        return done

    # Configurations ---------------------------------------------------------------------
    async def _back_up_configs(self, run: RunMetadata) -> dict:
        """Copy the files each server's configuration (as used by the run) makes it read.

        Those are its describe and configure files (``ConfigId.file_stems``), each
        ``.xcfg``, else ``.xml``; ``prepare-*`` files are never read, so never copied.
        """
        servers = await self.db.run(lambda: {s.name: s for s in ECCServer.objects.all()})
        backups = {}
        for name, config in sorted(_mapping(run.configs).items()):
            server = servers.get(name)
            if server is None or not server.config_dir or not config:
                continue  # no configuration (directory) known: nothing to copy
            stems = list(ConfigId.parse(config).file_stems().values())
            host = host_for(self.pool, server.ssh_host, server.ip_address)
            try:
                names = await choose_config_files(host, server.config_dir, stems)
            except RemoteFileNotFound as exc:
                raise FilingError(f"ECC server {name} ({config}): {exc}; nothing of its "
                                  "configuration was backed up") from exc
            result = await host.backup_configs(server.config_dir, names,
                                               str(settings.CONFIG_BACKUP_ROOT),
                                               run.experiment.name, run.run_number)
            backups[name] = {"directory": result.destination,
                             "files": [f.name for f in result.files]}
        return backups


def _describe(exc: BaseException) -> str:
    """An exception in words: ours as they are, anything else with its type."""
    if isinstance(exc, FilingError | RemoteError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _settled(host, workdir: str) -> list[FileInfo]:
    """The directory's files once two listings agree (writers have closed them)."""
    before = await host.list_files(workdir)
    for _ in range(20):
        await asyncio.sleep(SETTLE_SECONDS)
        after = await host.list_files(workdir)
        if after == before:
            return after
        before = after
    raise FilingError(f"files in {workdir} keep changing: is a run still going?")


def _file_entry(router: str, found: ScannedFile) -> tuple[dict | None, str]:
    """A file's manifest entry and its problem, if any ("" when none)."""
    if found.stamp is None or found.scan is None:
        return None, f"{found.name} (router {router}) could not be read: {found.problem}"
    scan = found.scan
    counts = [{"cobo": cobo, "asad": asad, "frames": c.frames, "first_event": c.first_event,
               "last_event": c.last_event} for (cobo, asad), c in sorted(scan.counts.items())]
    error = ""
    if scan.error is not None:
        error = f"byte {scan.error.offset}: {scan.error.detail}"
    entry = {"router": router, "name": found.name, "bytes": found.stamp.size,
             "size": found.stamp.size, "mtime_ns": found.stamp.mtime_ns,
             "frames": scan.frames, "other_frames": scan.other_frames, "counts": counts,
             "error": error}
    problem = (f"{found.name} (router {router}): {error}; the frames after it are not "
               "counted") if error else ""
    return entry, problem


# What the counts say ------------------------------------------------------------------

def _file_order(name: str) -> tuple:
    """Files in the order a router wrote them: by set time, then number."""
    parsed = parse_graw_name(name)
    return (parsed.stamp, parsed.number, name) if parsed else ("", 0, name)


def summarize(routers: dict[str, dict]) -> dict[str, dict]:
    """Per CoBo: events, first and last event, and per AsAd its frames, first and last.

    Parameters
    ----------
    routers
        The ``routers`` part of a manifest.
    """
    files = sorted((f for r in routers.values() for f in r.get("files", [])),
                   key=lambda f: _file_order(f["name"]))
    asads: dict[tuple[int, int], dict] = {}
    for entry in files:
        for count in entry.get("counts", []):
            key = count["cobo"], count["asad"]
            if key not in asads:
                asads[key] = {"frames": 0, "first_event": count["first_event"]}
            asads[key]["frames"] += count["frames"]
            asads[key]["last_event"] = count["last_event"]
    events: dict[str, dict] = {}
    for (cobo, asad), count in sorted(asads.items()):
        board = events.setdefault(f"CoBo[{cobo}]", {"asads": {}})
        board["asads"][str(asad)] = count
    for board in events.values():
        counts = board["asads"].values()
        board["events"] = max(c["frames"] for c in counts)
        board["first_event"] = min(c["first_event"] for c in counts)
        board["last_event"] = max(c["last_event"] for c in counts)
    return events


def _short(count: int, largest: int) -> bool:
    """The rule of the module docstring: under 99 % of the largest, and over 2 fewer."""
    return count < SHORT_FRACTION * largest and largest - count > SHORT_SLACK


def _others(counts: list[int]) -> str:
    return (f"the other has {counts[0]:,}" if len(counts) == 1 else
            f"the others have {counts[0]:,}" if len(set(counts)) == 1 else
            f"the others have up to {max(counts):,}")


def short_counts(events: dict[str, dict]) -> list[str]:
    """The CoBos, and the AsAds within a CoBo, whose counts are short (see the rule)."""
    problems = []
    totals = {name: board["events"] for name, board in events.items()}
    largest = max(totals.values(), default=0)
    for name, count in totals.items():
        if _short(count, largest):
            others = [c for n, c in totals.items() if n != name]
            problems.append(f"{name} has {count:,} events where {_others(others)}")
    for name, board in events.items():
        frames = {asad: c["frames"] for asad, c in board["asads"].items()}
        for asad, count in frames.items():
            if _short(count, board["events"]):
                problems.append(f"{name} AsAd {asad} has {count:,} frames where its other "
                                f"AsAds have up to {board['events']:,}")
    return problems


def missing_boards(boards: list[_Board], routers: dict[str, dict],
                   events: dict[str, dict]) -> list[str]:
    """The CoBos of the run's boards that sent nothing that was filed."""
    named = set()
    for router in routers.values():
        for entry in router.get("files", []):
            parsed = parse_graw_name(entry["name"])
            if parsed and parsed.cobo is not None:
                named.add(f"CoBo[{parsed.cobo}]")
    problems = []
    for board in boards:
        for source, router in board.sources:
            if not source.startswith("CoBo[") or router is None:
                continue  # the MuTAnT's data are not counted; a source with no router sends none
            if source not in events and source not in named:
                of = "" if source == board.name else f" (ECC server {board.name})"
                problems.append(f"{source}{of} has no data file in this run")
    return problems


def _clock(text: object, day: object = None) -> str:
    """An ISO time of the coverage as the page says it: local HH:MM:SS (with the date
    when it is not ``day``'s)."""
    try:
        moment = timezone.localtime(datetime.fromisoformat(str(text)))
    except (TypeError, ValueError):
        return str(text)
    try:
        same_day = day is not None and timezone.localtime(
            datetime.fromisoformat(str(day))).date() == moment.date()
    except (TypeError, ValueError):
        same_day = False
    return f"{moment:%H:%M:%S}" if same_day or day is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def _span(span: dict) -> str:
    start = span.get("from")
    if span.get("to") is None:
        return f"from {_clock(start)} to the end of the run"
    return f"from {_clock(start)} to {_clock(span['to'], start)}"


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def coverage_problems(coverage) -> list[str]:
    """Router outages and exclusions during the run, from the run keeper's coverage."""
    problems = []
    coverage = _mapping(coverage)
    for kind, label in (("routers", "router "), ("boards", "")):
        for name, entry in sorted(_mapping(coverage.get(kind)).items()):
            entry = _mapping(entry)
            if not entry.get("took_part", True):
                continue  # not in the run: its exclusion is no loss of the run's data
            for span in entry.get("outages") or []:
                if isinstance(span, dict):
                    problems.append(f"{label}{name} was offline during the run {_span(span)}")
            for span in entry.get("excluded") or []:
                if isinstance(span, dict):
                    why = f": {span['reason']}" if span.get("reason") else ""
                    problems.append(f"{label}{name} was excluded during the run "
                                    f"{_span(span)}{why}")
    return problems


# Database (on the engine's database thread) -------------------------------------------

def _survey(run: RunMetadata) -> _Survey:
    """The boards and routers of ``run``, as they are now."""
    servers = {s.name: s for s in ECCServer.objects.prefetch_related("data_sources__data_router")}
    coverage = _mapping(run.coverage)
    covered = _mapping(coverage.get("boards"))
    if covered:
        names = [n for n, e in covered.items() if _mapping(e).get("took_part", True)]
    else:
        names = [n for n in _mapping(run.configs) if n in servers and servers[n].enabled]
    boards = []
    for name in sorted(names):
        server = servers.get(name)
        if server is None:
            continue  # deleted since: nothing to wait for
        sources = [(s.name, s.data_router.name if s.data_router else None)
                   for s in server.data_sources.all()]
        boards.append(_Board(name, server.state, server.is_online, server.excluded, sources))
    routed = _mapping(coverage.get("routers"))
    routers = []
    for row in DataRouter.objects.all():
        if routed and not _mapping(routed.get(row.name)).get("took_part", False):
            continue  # not in the run
        routers.append((RouterInfo(row.pk, row.name, row.ip_address, row.ssh_host, row.port,
                                   row.working_dir), row.excluded))
    return _Survey(boards, routers)


def _finish(pk: int, manifest: dict, problems: list[str]) -> list[str]:
    """Mark the run filed with its manifest, adding ``problems`` to those it has."""
    with transaction.atomic():
        run = RunMetadata.objects.select_for_update().get(pk=pk)
        known = list(run.problems) if isinstance(run.problems, list) else []
        new = known + [p for p in dict.fromkeys(problems) if p not in known]
        RunMetadata.objects.filter(pk=pk).update(
            manifest=manifest, filed=True, filing_error="", problems=new,
            incomplete=bool(new) or run.incomplete)
    return [p for p in new if p not in known]


