"""The log entry drafted at each Stop: against emulators reading a copy of the example
configurations, two runs with a different configure file; the draft names the file and
its changed lines, the data per router, who started and stopped it."""

from __future__ import annotations

import shutil

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from attpcdaq.daq.models import (
    Command,
    ECCServer,
    Event,
    Experiment,
    LogEntry,
    RunClass,
    RunConfig,
    RunMetadata,
)
from attpcdaq.emulator.datapath import DataSettings
from attpcdaq.emulator.server import EXAMPLE_CONFIG_DIR, EccEmulatorGroup
from attpcdaq.engine.logdraft import changes_between, draft_entry
from attpcdaq.engine.supervisor import Engine

from .conftest import fast_settings, make_model, wait_for
from .test_engine import run_command

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def configs(tmp_path):
    directory = tmp_path / "configs"
    shutil.copytree(EXAMPLE_CONFIG_DIR, directory)
    return directory


@pytest.fixture
async def rig(configs, router, more_routers, transactional_db, settings, tmp_path):
    """Two emulated servers reading ``configs``, the model pointing at it, an engine."""
    settings.CONFIG_BACKUP_ROOT = tmp_path / "backups"
    group = EccEmulatorGroup(count=2, host="127.0.0.1", port=0, config_dir=configs,
                             transition_seconds=0.05,
                             data=DataSettings(rate_hz=20, hits_per_asad=4))
    await group.__aenter__()
    others = [(r.port, str(r.workdir)) for r in more_routers(1)]

    def model():
        make_model([s.url for s in group.servers], router.port, str(router.workdir), others)
        ECCServer.objects.update(config_dir=str(configs))
    await sync_to_async(model)()
    engine = Engine(fast_settings())
    await engine.start()
    yield engine
    await engine.stop()
    await group.__aexit__(None, None, None)


def operator(name: str) -> User:
    user = User.objects.create_user(name)
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    return user


async def one_run(user: User, **options) -> RunMetadata:
    command = await sync_to_async(Command.objects.create)(
        kind=Command.Kind.TRANSITION, target=ECCServer.RUNNING, label="Start a run",
        options=options, user=user)
    done = await wait_for(lambda: Command.objects.filter(
        pk=command.pk, status__in=["done", "failed"]).first(), 20, "the Start")
    assert (done.status, done.error) == ("done", "")
    stop = await sync_to_async(Command.objects.create)(
        kind=Command.Kind.TRANSITION, target=ECCServer.READY, label="Stop the run", user=user)
    await wait_for(lambda: Command.objects.filter(pk=stop.pk, status="done").exists(), 20,
                   "the Stop")
    return await wait_for(lambda: RunMetadata.objects.filter(pk=done.run_id, filed=True)
                          .first(), 20, "the run filed")


async def test_the_draft_names_what_changed_between_two_runs(rig, configs):
    # Seeded by a migration, but a transactional test before this one flushed them.
    for name in ("Beam", "Pulser"):
        await sync_to_async(RunClass.objects.get_or_create)(name=name)
    alice, bob = await sync_to_async(operator)("alice"), await sync_to_async(operator)("bob")
    assert (await run_command("ready")).status == "done"
    first = await one_run(alice, title="pulser check", run_class="Pulser")
    entry = await wait_for(lambda: LogEntry.objects.filter(run=first, drafted=True).first(),
                           10, "the first draft")
    assert (entry.confirmed_at, entry.author_id) == (None, None)
    assert entry.text.startswith("Run 0 — Pulser · “pulser check”")
    assert "by alice; stopped" in entry.text and "stopped" in entry.text
    assert "No earlier run of the experiment recorded its configuration files." in entry.text
    for router in ("router0", "router1"):
        assert f"  {router}: " in entry.text
    assert "CoBo[0]" in entry.text and " events" in entry.text

    # The threshold raised on disk, configured again: the next run's draft says so.
    shared = configs / "configure-experiment.xcfg"
    shared.write_text(shared.read_text().replace(
        "<zeroSuppressionThreshold>40<", "<zeroSuppressionThreshold>55<"))
    assert (await run_command("reset")).status == "done"
    assert (await run_command("ready")).status == "done"
    second = await one_run(bob, title="beam on target", run_class="Beam", comment="¡ok!")
    text = (await wait_for(lambda: LogEntry.objects.filter(run=second, drafted=True).first(),
                           10, "the second draft")).text
    assert text.startswith("Run 1 — Beam · “beam on target”")
    assert "Comment: ¡ok!" in text
    assert "by bob; stopped" in text and "by bob." in text
    assert "Changed since run 0:" in text
    for server in ("CoBo[0]", "CoBo[1]"):
        assert f"  {server}: configure-experiment.xcfg changed" in text
    assert "-<zeroSuppressionThreshold>40</zeroSuppressionThreshold>" in text.replace(" ", "")
    assert "+<zeroSuppressionThreshold>55</zeroSuppressionThreshold>" in text.replace(" ", "")
    assert "describe-cobo0.xcfg" not in text.split("Changed since run 0:")[1]  # unchanged
    # Drafted once: filing is done, and drafting again changes nothing.
    assert await sync_to_async(draft_entry)(second.pk) is None
    assert await sync_to_async(LogEntry.objects.filter(run=second).count)() == 1


def _run(experiment, number, files: dict[str, list[tuple[str, str]]], **fields):
    run = RunMetadata.objects.create(experiment=experiment, run_number=number,
                                     status=RunMetadata.Status.STOPPED, filed=True, **fields)
    for server, entries in files.items():
        RunConfig.objects.create(run=run, server_name=server, config="c/p/c", files=[
            {"filename": name, "sha256": str(hash(text)), "text": text}
            for name, text in entries])
    return run


def test_changes_name_files_added_removed_and_changed_and_servers_that_came_or_went(db):
    experiment = Experiment.objects.create(name="e1", is_active=True)
    long_before = "\n".join(f"line {n}" for n in range(30))
    long_after = "\n".join(f"line {n}{'x' if n % 2 else ''}" for n in range(30))
    before = _run(experiment, 3, {"CoBo[0]": [("a.xcfg", "same"), ("gone.xcfg", "x"),
                                              ("long.xcfg", long_before)],
                                  "CoBo[9]": [("a.xcfg", "same")]})
    after = _run(experiment, 4, {"CoBo[0]": [("a.xcfg", "same"), ("new.xcfg", "y"),
                                             ("long.xcfg", long_after)],
                                 "Mutant": [("m.xcfg", "m")]})
    lines = changes_between(before, after)
    assert "  CoBo[0]: gone.xcfg removed" in lines
    assert "  CoBo[0]: new.xcfg added" in lines
    assert "  CoBo[0]: long.xcfg changed" in lines
    assert not any("a.xcfg" in line for line in lines)
    assert "      … 24 more changed line(s)" in lines  # 30 lines: 15 out, 15 in, 6 shown
    assert "  CoBo[9]: took part in run 3, not in this run" in lines
    assert any(line.startswith("  Mutant: new in this run") for line in lines)


def test_the_draft_of_a_run_stopped_at_its_limit_with_alarms_and_problems(db):
    experiment = Experiment.objects.create(name="e1", is_active=True)
    start = timezone.now() - timezone.timedelta(seconds=100)
    run = _run(experiment, 0, {}, start_datetime=start, stop_datetime=start +
               timezone.timedelta(seconds=90), paused_seconds=30.0, limit_seconds=60.0,
               auto_restart=True, incomplete=True, problems=["CoBo[1] has 3 events where "
                                                             "the other has 900"],
               coverage={"boards": {"CoBo[2]": {"took_part": False, "excluded": [
                   {"from": None, "to": None, "reason": "<b>broken</b> AsAd"}]}}})
    Command.objects.create(kind=Command.Kind.TRANSITION, target=ECCServer.READY,
                           label="Stop the run (limit reached)", run=run, status="done")
    Event.objects.create(level="alarm", source="router0", message="router0 went offline",
                         run=run)
    Event.objects.create(level="info", source="run control", message="harmless", run=run)
    entry = draft_entry(run.pk)
    assert entry.drafted and entry.run_id == run.pk
    text = entry.text
    assert "by the engine, at its limit." in text and "Started " in text
    assert "Duration 0:01:30, live time 0:01:00 (paused 0:00:30)." in text
    assert "Limits: 0:01:00 live time; restarts by itself" in text
    assert "alarm router0: router0 went offline" in text and "harmless" not in text
    assert "  CoBo[2]: not in the run (excluded: <b>broken</b> AsAd)" in text
    assert "Incomplete data:\n  CoBo[1] has 3 events where the other has 900" in text
    assert "  no data filed" in text
    # An aborted run gets no draft.
    aborted = RunMetadata.objects.create(experiment=experiment, run_number=1,
                                         status=RunMetadata.Status.ABORTED)
    assert draft_entry(aborted.pk) is None
