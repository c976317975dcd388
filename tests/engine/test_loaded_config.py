"""The configuration the hardware loaded: recorded from Configure's answer, copied onto the
run at Start, dropped below Ready, and the drift guard that refuses a Start after a file
changed on disk (locally and over SSH) until Configure runs again or the operator confirms.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from attpcdaq.daq import services
from attpcdaq.daq.models import (
    Command,
    ECCServer,
    Event,
    LoadedConfig,
    RunConfig,
    RunMetadata,
)
from attpcdaq.emulator.datapath import DataSettings
from attpcdaq.emulator.server import EXAMPLE_CONFIG_DIR, EccEmulatorGroup
from attpcdaq.engine.database import EngineDatabase
from attpcdaq.engine.loaded import DRIFT_REFUSAL, check_drift, loaded_files
from attpcdaq.engine.supervisor import Engine
from attpcdaq.remote import HostPool

from .conftest import fast_settings, make_model, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
READY, PREPARED = ECCServer.READY, ECCServer.PREPARED


@pytest.fixture
def configs(tmp_path):
    """A copy of the example configuration directory (a hostile name), safe to change."""
    directory = tmp_path / "ecc configs 'é' $(x)"
    shutil.copytree(EXAMPLE_CONFIG_DIR, directory)
    return directory


@pytest.fixture
async def rig(configs, router, more_routers, transactional_db, settings, tmp_path):
    """Emulated servers reading ``configs``, a model pointing at it, and a running engine.

    Each CoBo has a router of its own (a dataRouter serves one connection at a time).
    """
    settings.CONFIG_BACKUP_ROOT = tmp_path / "backups"
    groups, engines = [], []

    async def start(count: int = 2, *, ssh=None):
        group = EccEmulatorGroup(count=count, host="127.0.0.1", port=0, config_dir=configs,
                                 transition_seconds=0.05,
                                 data=DataSettings(rate_hz=20, hits_per_asad=4))
        await group.__aenter__()
        groups.append(group)

        others = [(r.port, str(r.workdir)) for r in more_routers(count - 1)]

        def model():
            servers = make_model([s.url for s in group.servers], router.port,
                                 str(router.workdir), others)
            ECCServer.objects.update(config_dir=str(configs),
                                     ssh_host="127.0.0.1" if ssh else "")
            return servers
        servers = await sync_to_async(model)()
        engine_settings = fast_settings()
        if ssh is not None:
            engine_settings.ssh_options = ssh.options()
        engine = Engine(engine_settings)
        await engine.start()
        engines.append(engine)
        return group, servers, engine

    yield start
    for engine in engines:
        await engine.stop()
    for group in groups:
        await group.__aexit__(None, None, None)


async def run_command(target, server=None, *, confirm=False, timeout=20.0) -> Command:
    command = await sync_to_async(services.request_transition)(None, target, server,
                                                               confirm_drift=confirm)
    return await wait_for(lambda: Command.objects.filter(
        pk=command.pk, status__in=["done", "failed"]).first(), timeout, f"command {target}")


def loaded(name: str) -> LoadedConfig | None:
    return LoadedConfig.objects.filter(ecc_server__name=name).first()


def at(config: LoadedConfig) -> str:
    return timezone.localtime(config.configured_at).strftime("%H:%M")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Recorded at Configure, copied at Start -----------------------------------------------------

async def test_configure_records_every_file_the_server_used_and_start_copies_it(rig, configs):
    group, servers, engine = await rig(2)
    assert (await run_command("ready")).status == "done"
    for number in range(2):
        row = await sync_to_async(loaded)(f"CoBo[{number}]")
        assert row is not None, "nothing recorded from Configure's answer"
        assert (row.config, row.problem) == (f"cobo{number}/experiment/experiment", "")
        assert row.configured_at is not None
        files = {f["filename"]: f for f in row.file_list}
        # What the server really read: its describe and configure files, never prepare-*.
        assert set(files) == {f"describe-cobo{number}.xcfg", "configure-experiment.xcfg"}
        for name, entry in files.items():
            data = (configs / name).read_bytes()
            assert entry["text"] == data.decode()
            assert entry["sha256"] == sha(data)
    command = await run_command("running")
    assert (command.status, command.error) == ("done", "")
    copies = await sync_to_async(lambda: {
        rc.server_name: rc for rc in RunConfig.objects.filter(run_id=command.run_id)})()
    assert set(copies) == {"CoBo[0]", "CoBo[1]"}
    original = await sync_to_async(loaded)("CoBo[1]")
    assert copies["CoBo[1]"].files == original.files
    assert copies["CoBo[1]"].configured_at == original.configured_at
    assert copies["CoBo[1]"].config == "cobo1/experiment/experiment"
    assert (await run_command("ready")).status == "done"


async def test_going_below_ready_or_a_restart_drops_what_was_loaded(rig):
    group, servers, engine = await rig(2)
    assert (await run_command("ready")).status == "done"
    assert await sync_to_async(LoadedConfig.objects.count)() == 2
    # One server one step back (Breakup: Ready -> Prepared): its record goes, not the other's.
    assert (await run_command("reset", servers[0])).status == "done"
    assert await sync_to_async(loaded)("CoBo[0]") is None
    assert await sync_to_async(loaded)("CoBo[1]") is not None
    # A restarted server comes back Idle, knowing nothing of its boards.
    await group.servers[1].crash()
    await group.servers[1].restart()
    await wait_for(lambda: ECCServer.objects.filter(name="CoBo[1]", state=ECCServer.IDLE,
                                                    is_online=True).exists(), 10, "back Idle")
    await wait_for(lambda: not LoadedConfig.objects.filter(ecc_server__name="CoBo[1]").exists(),
                   5, "the restarted server's record dropped")


# The drift guard -------------------------------------------------------------------------

async def test_start_is_refused_after_a_file_changed_and_allowed_after_configure_again(
        rig, configs):
    group, servers, engine = await rig(2)
    assert (await run_command("ready")).status == "done"
    first = await sync_to_async(loaded)("CoBo[0]")
    shared = configs / "configure-experiment.xcfg"
    shared.write_text(shared.read_text().replace("</", "<!-- threshold raised -->\n</", 1))
    command = await run_command("running")
    assert command.status == "failed"
    assert command.error.startswith(DRIFT_REFUSAL)
    for number in range(2):
        row = await sync_to_async(loaded)(f"CoBo[{number}]")
        assert (f"configure-experiment.xcfg changed since CoBo[{number}] was configured at "
                f"{at(row)}: Configure again") in command.error
    assert "describe-cobo" not in command.error  # unchanged files are not named
    assert not await sync_to_async(RunMetadata.objects.exists)()
    assert await sync_to_async(lambda: Command.objects.get(pk=command.pk).refused_for_drift)()
    # Configure again: one step back and forward; the new text is what is recorded.
    assert (await run_command("reset")).status == "done"
    assert await sync_to_async(LoadedConfig.objects.count)() == 0
    assert (await run_command("ready")).status == "done"
    again = await sync_to_async(loaded)("CoBo[0]")
    assert again.configured_at > first.configured_at
    text = {f["filename"]: f["text"] for f in again.file_list}["configure-experiment.xcfg"]
    assert "threshold raised" in text
    command = await run_command("running")
    assert (command.status, command.error) == ("done", "")
    assert (await run_command("ready")).status == "done"


async def test_a_confirmed_start_goes_through_and_keeps_what_the_boards_loaded(rig, configs):
    group, servers, engine = await rig(2)
    assert (await run_command("ready")).status == "done"
    before = (configs / "describe-cobo1.xcfg").read_bytes()
    (configs / "describe-cobo1.xcfg").write_bytes(before + b"<!-- edited after Configure -->\n")
    (configs / "describe-cobo0.xcfg").unlink()
    refused = await run_command("running")
    assert refused.status == "failed"
    assert "describe-cobo1.xcfg changed since CoBo[1]" in refused.error
    assert "describe-cobo0.xcfg was removed since CoBo[0]" in refused.error
    command = await run_command("running", confirm=True)
    assert (command.status, command.error) == ("done", "")
    assert "despite configuration drift" in command.describe()
    run = await sync_to_async(RunMetadata.objects.get)(pk=command.run_id)
    assert run.status == "running"
    copy = await sync_to_async(RunConfig.objects.get)(run=run, server_name="CoBo[1]")
    # The run keeps what the hardware really loaded, not what the disk holds now.
    assert {f["filename"]: f["text"] for f in copy.file_list}["describe-cobo1.xcfg"] == \
        before.decode()
    warning = await sync_to_async(Event.objects.filter(run=run, level="warning").first)()
    assert warning is not None and "describe-cobo1.xcfg changed" in warning.message
    assert (await run_command("ready")).status == "done"


async def test_confirmation_is_for_a_system_wide_start_only(rig):
    group, servers, engine = await rig(1)
    with pytest.raises(services.ControlError, match="system-wide Start"):
        await sync_to_async(services.request_transition)(None, "ready", confirm_drift=True)
    with pytest.raises(services.ControlError, match="system-wide Start"):
        await sync_to_async(services.request_transition)(None, "running", servers[0],
                                                         confirm_drift=True)
    assert not await sync_to_async(Command.objects.exists)()


async def test_drift_is_found_over_ssh(rig, configs, sshd):
    group, servers, engine = await rig(2, ssh=sshd)
    assert (await run_command("ready")).status == "done"
    (configs / "describe-cobo0.xcfg").write_text("<Setup><!-- someone else's --></Setup>\n")
    command = await run_command("running")
    assert command.status == "failed"
    assert "describe-cobo0.xcfg changed since CoBo[0]" in command.error
    assert "CoBo[1]" not in command.error
    assert engine.pool.host("127.0.0.1", local=False).connects == 1


async def test_an_unreachable_config_dir_refuses_start_saying_so(rig, configs):
    group, servers, engine = await rig(1)
    assert (await run_command("ready")).status == "done"
    await sync_to_async(lambda: ECCServer.objects.update(config_dir=str(configs / "gone")))()
    command = await run_command("running")
    assert command.status == "failed"
    assert "cannot compare CoBo[0]'s configuration files with what it loaded" in command.error
    assert "gone" in command.error


# check_drift on recorded rows, without servers --------------------------------------------

@pytest.fixture
async def recorded(transactional_db, configs):
    """One server whose record says it loaded describe-cobo0.xml and configure-x.xcfg."""
    (configs / "describe-cobo0.xml").write_text("<Setup>as xml</Setup>\n")
    (configs / "configure-x.xcfg").write_text("<Setup>x</Setup>\n")

    def model():
        server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=1,
                                          config_dir=str(configs))
        server.selected_config = server.configs.create(describe="cobo0", prepare="x",
                                                       configure="x")
        server.save()
        files = [{"filename": n, "sha256": sha((configs / n).read_bytes()),
                  "text": (configs / n).read_text()}
                 for n in ("describe-cobo0.xml", "configure-x.xcfg")]
        files.append({"filename": "../../etc/passwd", "sha256": "0" * 64, "text": ""})
        LoadedConfig.objects.create(ecc_server=server, config="cobo0/x/x", files=files,
                                    configured_at=timezone.now())
        return server

    server = await sync_to_async(model)()
    db = EngineDatabase()

    class Coord:  # what check_drift reads of a coordinator
        class info:
            pk = server.pk

    async with HostPool() as pool:
        yield lambda: check_drift(db, pool, [Coord])
    await db.close()


async def test_check_drift_compares_by_stem_xcfg_first(recorded, configs):
    check = recorded
    # Nothing changed: the example's describe-cobo0.xcfg is there too, but the record
    # says the server read the .xml, so an .xcfg now shadowing it is drift.
    problems = await check()
    assert len(problems) == 1
    assert problems[0].startswith("describe-cobo0.xcfg appeared since CoBo[0] was configured")
    assert "read before describe-cobo0.xml" in problems[0]
    (configs / "describe-cobo0.xcfg").unlink()
    assert await check() == []
    (configs / "configure-x.xcfg").write_text("<Setup>y</Setup>\n")
    (configs / "describe-cobo0.xml").unlink()
    problems = await check()
    assert len(problems) == 2
    assert problems[0].startswith("describe-cobo0.xml was removed since CoBo[0]")
    assert problems[1].startswith("configure-x.xcfg changed since CoBo[0]")
    assert not any("passwd" in p for p in problems)  # never looked for outside the directory


async def test_check_drift_when_another_set_is_selected(recorded):
    def select_other():
        server = ECCServer.objects.get()
        server.selected_config = server.configs.create(describe="cobo1", prepare="x",
                                                       configure="x")
        server.save()
    await sync_to_async(select_other)()
    (problem,) = await recorded()
    assert "CoBo[0] was configured with cobo0/x/x at" in problem
    assert "but cobo1/x/x is selected now: Configure again" in problem


def test_loaded_files_of_answers():
    files, problem = loaded_files(
        '<DataLinkSet/>\n<ConfigSet><File filename="describe-cobo0.xcfg">&lt;Setup&gt;é'
        '&lt;/Setup&gt;\n</File></ConfigSet>')
    assert problem == ""
    assert files == [{"filename": "describe-cobo0.xcfg", "text": "<Setup>é</Setup>\n",
                      "sha256": sha("<Setup>é</Setup>\n".encode())}]
    assert loaded_files("") == ([], "Configure's answer held no configuration files")
    files, problem = loaded_files("<ConfigSet><File>no name</File></ConfigSet>")
    assert files == [] and problem.startswith("Configure's answer could not be read")
