"""The end of a run: data routers watched, each run's files filed, configurations saved."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from attpcdaq.daq.models import Command, DataRouter, ECCServer, Experiment, RunMetadata
from attpcdaq.engine.supervisor import Engine
from attpcdaq.get import iter_frames

from .conftest import fast_settings, wait_for
from .test_engine import run_command

pytestmark = pytest.mark.django_db(transaction=True)
EXPERIMENT = "e20009 test"


def graws(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in directory.glob("*.graw")}


async def a_run(seconds: float = 0.6) -> RunMetadata:
    """Go to Ready, Start, take data for a while, Stop; return the run once filed."""
    assert (await run_command("ready")).status == "done"
    command = await run_command("running")
    assert (command.status, command.error) == ("done", "")
    await asyncio.sleep(seconds)
    assert (await run_command("ready")).status == "done"
    return await wait_for(lambda: RunMetadata.objects.filter(pk=command.run_id, filed=True)
                          .first(), 20, "the run filed")


async def test_a_run_is_filed_with_its_configuration_and_the_next_start_works(system, router,
                                                                             more_routers):
    group, servers, engine = await system(2)
    run = await a_run()
    folder = router.workdir / EXPERIMENT / "run_0000"
    files = graws(folder)
    assert len(files) == 4  # CoBo[0] x 4 AsAds; CoBo[1] has router1
    assert graws(router.workdir) == {}
    for name in files:
        frames = list(iter_frames(folder / name))
        assert frames and {f.asad_idx for f in frames} == {int(name.split("_")[1][-1])}
        assert {f.cobo_idx for f in frames} == {0}
    other = more_routers(1)[0].workdir
    assert len(graws(other / EXPERIMENT / "run_0000")) == 4
    assert run.manifest["routers"]["router1"]["directory"] == str(other / EXPERIMENT /
                                                                  "run_0000")
    manifest = run.manifest["routers"]["router0"]
    assert {f["name"]: f["size"] for f in manifest["files"]} == files
    assert manifest["bytes"] == sum(files.values()) and manifest["directory"] == str(folder)
    backups = Path(settings.CONFIG_BACKUP_ROOT) / EXPERIMENT / "run_0000"
    # The files the servers really read: describe and configure, never prepare-*.
    assert sorted(p.name for p in backups.iterdir()) == [
        "configure-experiment.xcfg", "describe-cobo0.xcfg", "describe-cobo1.xcfg"]
    assert run.manifest["configs"]["CoBo[1]"]["files"] == [
        "configure-experiment.xcfg", "describe-cobo1.xcfg"]
    # The router is clean again, and the next run starts and files under its own number.
    assert await sync_to_async(lambda: all(r.is_clean for r in DataRouter.objects.all()))()
    second = await a_run(0.3)
    assert second.run_number == 1
    assert len(graws(router.workdir / EXPERIMENT / "run_0001")) == 4


async def test_backup_takes_xml_when_no_xcfg_and_names_a_missing_file(system, tmp_path):
    group, servers, engine = await system(2)
    configs = tmp_path / "ecc configs 'A'"
    configs.mkdir()
    (configs / "describe-cobo0.xml").write_text("<Setup>cobo0 as .xml</Setup>")
    (configs / "configure-experiment.xcfg").write_text("<Setup>experiment</Setup>")
    (configs / "configure-experiment.xml").write_text("<Setup>not read: .xcfg first</Setup>")
    (configs / "prepare-experiment.xcfg").write_text("<Setup>never read</Setup>")
    assert (await run_command("ready")).status == "done"
    command = await run_command("running")
    assert (command.status, command.error) == ("done", "")
    # The files move while the run goes on: the backup reads them after Stop.
    await sync_to_async(lambda: ECCServer.objects.update(config_dir=str(configs)))()
    assert (await run_command("ready")).status == "done"
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=command.run_id)
                         .exclude(filing_error="").first(), 20, "filing to fail")
    assert "ECC server CoBo[1] (cobo1/experiment/experiment)" in run.filing_error
    assert ("no configuration file describe-cobo1 (neither describe-cobo1.xcfg nor "
            "describe-cobo1.xml is there)") in run.filing_error
    assert not run.filed
    # Once the file is there, the next retry files the run.
    (configs / "describe-cobo1.xml").write_text("<Setup>cobo1 as .xml</Setup>")
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=command.run_id, filed=True)
                         .first(), 20, "the run filed")
    backups = Path(settings.CONFIG_BACKUP_ROOT) / EXPERIMENT / "run_0000"
    assert sorted(p.name for p in backups.iterdir()) == [
        "configure-experiment.xcfg", "describe-cobo0.xml", "describe-cobo1.xml"]
    assert (backups / "describe-cobo0.xml").read_text() == "<Setup>cobo0 as .xml</Setup>"
    assert (backups / "configure-experiment.xcfg").read_text() == "<Setup>experiment</Setup>"
    assert run.manifest["configs"]["CoBo[0]"]["files"] == [
        "configure-experiment.xcfg", "describe-cobo0.xml"]


async def test_data_rate_shows_while_running(system):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    assert (await run_command("running")).status == "done"
    await wait_for(lambda: DataRouter.objects.filter(data_rate__gt=0).exists(), 10, "a rate")
    assert (await run_command("ready")).status == "done"


async def test_start_is_refused_while_a_router_is_not_clean(system, router):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    (router.workdir / "CoBo_AsAd0_stray_0000.graw").write_bytes(b"x" * 10)
    command = await run_command("running")
    assert command.status == "failed"
    # Refused as not clean, or (once the run keeper has seen the stray file) as data
    # written while no run was open, awaiting the operator's choice.
    assert ("data router router0 is not clean: 1 unfiled .graw file(s)" in command.error
            or "1 file(s) written on router0 while no run was open" in command.error)
    assert not await sync_to_async(RunMetadata.objects.exists)()


async def test_start_is_refused_while_a_router_is_offline(system, router):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    router.stop()
    command = await run_command("running")
    assert command.status == "failed" and "data router router0 is offline" in command.error
    await wait_for(lambda: not DataRouter.objects.get(name="router0").is_online,
                   what="router offline")


async def test_a_router_reached_over_ssh(system, router, sshd):
    group, servers, engine = await system(2)
    await engine.stop()
    await sync_to_async(lambda: DataRouter.objects.update(ssh_host="127.0.0.1",
                                                          working_dir=""))()
    over_ssh = Engine(fast_settings_with_ssh(sshd))
    await over_ssh.start()
    try:
        await wait_for(lambda: not DataRouter.objects.exclude(is_online=True, is_clean=True)
                       .exists(), what="routers online over SSH")
        run = await a_run(0.3)
        assert run.manifest["routers"]["router0"]["directory"] == str(
            router.workdir / EXPERIMENT / "run_0000")
        assert len(graws(router.workdir / EXPERIMENT / "run_0000")) == 4
        assert over_ssh.pool.host("127.0.0.1", local=False).connects == 1
    finally:
        await over_ssh.stop()


def fast_settings_with_ssh(sshd):
    settings_ = fast_settings()
    settings_.ssh_options = sshd.options()
    return settings_


async def test_filing_finishes_after_the_engine_is_killed_midway(transactional_db, tmp_path,
                                                                 router, settings):
    """SIGKILL the engine (and its children) while it files, restart it, lose nothing."""
    settings.CONFIG_BACKUP_ROOT = tmp_path / "backups"
    count = 20000
    for number in range(count):
        (router.workdir / f"CoBo_AsAd{number % 4}_2026-11-24T10:00:00.000_{number:05d}.graw"
         ).write_bytes(b"\0" * (64 + number % 7))
    expected = graws(router.workdir)

    def model():
        experiment = Experiment.objects.create(name=EXPERIMENT, is_active=True)
        DataRouter.objects.create(name="router0", ip_address="127.0.0.1", port=router.port,
                                  working_dir=str(router.workdir))
        return RunMetadata.objects.create(experiment=experiment, run_number=0, status="stopped")
    run = await sync_to_async(model)()
    folder = router.workdir / EXPERIMENT / "run_0000"
    database = settings.DATABASES["default"]
    url = (f"sqlite:///{database['NAME']}" if database["ENGINE"].endswith("sqlite3") else
           f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}")
    engine = subprocess.Popen([sys.executable, "-m", "attpcdaq", "engine"],  # noqa: ASYNC220
                              env={**os.environ, "ATTPCDAQ_DATABASE_URL": url,
                                   "ATTPCDAQ_BACKUP_ROOT": str(settings.CONFIG_BACKUP_ROOT)},
                              start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        moved = len(list(folder.glob("*.graw"))) if folder.exists() else 0
        if moved:
            break
        await asyncio.sleep(0.001)
    os.killpg(engine.pid, signal.SIGKILL)  # the engine and the shell moving files
    engine.wait(10)
    moved = len(list(folder.glob("*.graw")))
    assert 0 < moved < count, f"the kill came too late or too early: {moved} moved"
    assert not await sync_to_async(lambda: RunMetadata.objects.get().filed)()

    restarted = Engine(fast_settings())
    await restarted.start()
    try:
        await wait_for(lambda: RunMetadata.objects.get(pk=run.pk).filed, 60, "filed")
    finally:
        await restarted.stop()
    assert graws(folder) == expected  # every file exactly once, sizes unchanged
    assert graws(router.workdir) == {}
    manifest = await sync_to_async(lambda: RunMetadata.objects.get().manifest)()
    assert len(manifest["routers"]["router0"]["files"]) == count


async def test_log_tail_of_a_router(system, router, tmp_path):
    group, servers, engine = await system(1)
    log = tmp_path / "router.log"
    log.write_text("".join(f"line {n}\n" for n in range(1000)))
    await sync_to_async(lambda: DataRouter.objects.update(log_path=str(log)))()
    from attpcdaq.daq import services

    command = await sync_to_async(services.request_log_tail)(
        None, router=await sync_to_async(DataRouter.objects.get)())
    done = await wait_for(lambda: Command.objects.filter(pk=command.pk, status="done").first())
    assert done.result.splitlines()[-1] == "line 999"
    assert len(done.result.splitlines()) == 200
