"""Filing only when the data is complete: boards that keep acquiring, counts, incomplete runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from attpcdaq.daq.models import ApiToken, ECCServer, Event, RunMetadata
from attpcdaq.engine.filing import WAITING, coverage_problems, short_counts
from attpcdaq.get import EccClient, Operation, State, iter_frames
from attpcdaq.get.graw import encode_frame, make_event

from .conftest import wait_for
from .test_engine import run_command
from .test_filing import EXPERIMENT, graws

pytestmark = pytest.mark.django_db(transaction=True)


def streamer(group, index: int):
    """The emulated boards of server ``index`` and their one link (CoBo[index])."""
    boards = group.servers[index].boards.streamer
    (link,) = boards.links
    return boards, link


async def until(predicate, timeout: float = 20.0, what: str = ""):
    """Wait for a condition on the emulators (they run in this event loop)."""
    async with asyncio.timeout(timeout):
        while not (result := predicate()):  # noqa: ASYNC110 - the emulators have no event
            await asyncio.sleep(0.02)
    return result


def sent(group, index: int) -> int:
    boards, link = streamer(group, index)
    return boards.events_sent.get(link, 0)


async def started(group, count: int, events: int = 3) -> RunMetadata:
    """Ready, Start, and wait until every board sent ``events`` events."""
    assert (await run_command("ready")).status == "done"
    command = await run_command("running")
    assert (command.status, command.error) == ("done", "")
    await until(lambda: all(sent(group, i) >= events for i in range(count)), what="events")
    return await sync_to_async(RunMetadata.objects.get)(pk=command.run_id)


async def stop_from_outside(group, servers, index: int) -> None:
    """Stop one board behind the engine's back, once it is not busy."""
    async with EccClient(group.servers[index].url) as ecc:
        async with asyncio.timeout(10):
            while (reply := await ecc.get_state()).transitioning:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert reply.state == State.RUNNING
        await ecc.transition(Operation.STOP, servers[index].selected_config.to_get(), None)
        assert (await ecc.get_state()).state == State.READY


def manifest_files(run: RunMetadata, router: str) -> dict[str, int]:
    files = run.manifest["routers"][router]["files"]
    assert all(f["size"] == f["bytes"] and f["router"] == router for f in files)
    return {f["name"]: f["bytes"] for f in files}


def decoded(folder: Path, name: str) -> list[dict]:
    """Per (CoBo, AsAd), what decoding every frame of a file says, as the manifest has it."""
    counts: dict[tuple[int, int], dict] = {}
    for frame in iter_frames(folder / name):
        count = counts.setdefault((frame.cobo_idx, frame.asad_idx), {
            "cobo": frame.cobo_idx, "asad": frame.asad_idx, "frames": 0,
            "first_event": frame.event_idx})
        count["frames"] += 1
        count["last_event"] = frame.event_idx
    return [counts[key] for key in sorted(counts)]


def check_manifest_is_the_disk(run: RunMetadata, router: str, workdir: Path) -> Path:
    """The manifest lists exactly the files of the run folder, sizes and frame counts."""
    folder = workdir / EXPERIMENT / f"run_{run.run_number:04d}"
    entry = run.manifest["routers"][router]
    assert entry["directory"] == str(folder)
    assert manifest_files(run, router) == graws(folder) != {}
    assert entry["bytes"] == sum(graws(folder).values())
    for file in entry["files"]:
        assert file["counts"] == decoded(folder, file["name"]), file["name"]
        assert file["error"] == "" and file["frames"] == sum(c["frames"] for c in file["counts"])
    return folder


def check_counts_are_what_was_sent(run: RunMetadata, group, index: int) -> int:
    """The run's counts for CoBo[index] are the events its emulated boards sent."""
    boards, link = streamer(group, index)
    events = boards.events_sent[link]
    board = run.manifest["events"][f"CoBo[{index}]"]
    assert board["events"] == events > 0
    assert (board["first_event"], board["last_event"]) == (boards.next_event[link] - events,
                                                           boards.next_event[link] - 1)
    assert board["asads"] == {str(asad): {"frames": events, "first_event": board["first_event"],
                                          "last_event": board["last_event"]}
                              for asad in range(4)}
    return events


def waiting_events(run: RunMetadata) -> int:
    return Event.objects.filter(run=run, source="filing", message__contains="waits").count()


def api_run(number: int) -> dict:
    from django.contrib.auth.models import User

    user = User.objects.create_user(f"viewer{User.objects.count()}")
    response = Client().get(f"/api/runs/{number}",
                            HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user)}")
    assert response.status_code == 200, response.content
    return response.json()


async def test_filing_waits_for_a_board_whose_stop_hung_and_the_manifest_is_the_disk(
        system, router, more_routers):
    group, servers, engine = await system(2)
    run = await started(group, 2)
    group.servers[1].ecc.hang_next(Operation.STOP)
    stop = await run_command("ready", timeout=30)
    assert stop.status == "failed" and "CoBo[1]" in stop.error
    run = await wait_for(lambda: RunMetadata.objects.filter(
        pk=run.pk, status="stopped", filing_error__startswith=WAITING).first(), 20, "waiting")
    assert "CoBo[1] is still Running" in run.filing_error and not run.filed
    # The board goes on sending into router1; filing tried again and again waits, and
    # says so once.
    router1 = more_routers(1)[0].workdir
    moving = sum(graws(router1).values())
    await until(lambda: sum(graws(router1).values()) > moving, what="CoBo[1]'s data growing")
    for _ in range(3):
        assert not await engine.filer.file(run)
    assert await sync_to_async(waiting_events)(run) == 1
    assert not (router1 / EXPERIMENT).exists()

    group.servers[1].ecc.clear_faults()  # the hung Stop fails: CoBo[1] is still Running
    await stop_from_outside(group, servers, 1)
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=run.pk, filed=True).first(),
                         30, "the run filed")
    assert run.filing_error == "" and graws(router.workdir) == graws(router1) == {}
    check_manifest_is_the_disk(run, "router0", router.workdir)
    check_manifest_is_the_disk(run, "router1", router1)
    first, second = (check_counts_are_what_was_sent(run, group, i) for i in (0, 1))
    # CoBo[0] stopped seconds before CoBo[1]: its data is short of the other's.
    assert second > first + 20
    assert run.incomplete
    assert f"CoBo[0] has {first:,} events where the other has {second:,}" in run.problems

    body = await sync_to_async(api_run)(run.run_number)
    assert (body["number"], body["status"], body["filed"], body["incomplete"]) == (
        0, "stopped", True, True)
    assert body["problems"] == run.problems and body["coverage"] == run.coverage
    files = {(f["router"], f["name"]): f for f in body["manifest"]["files"]}
    assert {name: f["bytes"] for (r, name), f in files.items() if r == "router1"} == graws(
        router1 / EXPERIMENT / "run_0000")
    one = next(f for (r, _), f in files.items() if r == "router1")
    assert one["counts"][0]["cobo"] == 1 and one["counts"][0]["frames"] == second
    assert body["manifest"]["events"]["CoBo[1]"]["asads"]["3"]["frames"] == second


async def test_a_board_excluded_while_its_stop_hangs_is_filed_as_it_is(system, router,
                                                                       more_routers):
    group, servers, engine = await system(2)
    run = await started(group, 2)
    group.servers[1].ecc.hang_next(Operation.STOP)
    try:
        assert (await run_command("ready", timeout=30)).status == "failed"
        await wait_for(lambda: RunMetadata.objects.filter(
            pk=run.pk, filing_error__startswith=WAITING).exists(), 20, "waiting")
        await sync_to_async(ECCServer.objects.filter(name="CoBo[1]").update)(
            excluded=True, excluded_reason="its Stop hangs", excluded_at=timezone.now())
        run = await wait_for(lambda: RunMetadata.objects.filter(pk=run.pk, filed=True).first(),
                             30, "the run filed")
        assert sent(group, 1) > 0 and streamer(group, 1)[0].running  # still acquiring
        # What was moved is what was counted: the board's router writes anew in its
        # working directory, never into the run folder.
        router1 = more_routers(1)[0].workdir
        check_manifest_is_the_disk(run, "router0", router.workdir)
        check_manifest_is_the_disk(run, "router1", router1)
        check_counts_are_what_was_sent(run, group, 0)
        assert run.incomplete
        assert any(p.startswith("CoBo[1] still acquiring when the run was filed (excluded): "
                                "the data router router1 received after its files were moved "
                                "are not in this run") for p in run.problems)
    finally:
        group.servers[1].ecc.clear_faults()


def append_a_frame_to(folder: Path) -> dict[str, tuple[int, int]]:
    """Append a frame (event 10**6) to CoBo[0] AsAd 2's file; its name, size before and after."""
    path = min(folder.glob("CoBo0_AsAd2_*.graw"))
    before = path.stat().st_size
    with open(path, "ab") as file:
        file.write(encode_frame(make_event(0, 2, 10**6, 4)))
    return {path.name: (before, path.stat().st_size)}


async def test_a_short_cobo_and_a_file_changed_after_filing_make_the_run_incomplete(
        system, router, more_routers):
    group, servers, engine = await system(2)
    run = await started(group, 2)
    await stop_from_outside(group, servers, 1)  # CoBo[1] stops early
    early = sent(group, 1)
    await until(lambda: sent(group, 0) > early + 20, what="CoBo[0] going on")
    changed = {}

    async def append_a_frame(run, router_name, directory):
        """Between counting and the check that follows: a frame more in one file."""
        if router_name == "router0":
            changed.update(await asyncio.to_thread(append_a_frame_to, Path(directory)))

    engine.filer.after_count = append_a_frame
    assert (await run_command("ready")).status == "done"
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=run.pk, filed=True).first(),
                         30, "the run filed")
    (name, (before, after)), = changed.items()
    folder = check_manifest_is_the_disk(run, "router0", router.workdir)
    check_manifest_is_the_disk(run, "router1", more_routers(1)[0].workdir)
    assert manifest_files(run, "router0")[name] == after == (folder / name).stat().st_size
    full = check_counts_are_what_was_sent(run, group, 1)
    assert full == early
    cobo0 = run.manifest["events"]["CoBo[0]"]
    assert cobo0["asads"]["2"]["last_event"] == 10**6 and cobo0["last_event"] == 10**6
    assert cobo0["events"] == sent(group, 0) + 1 == cobo0["asads"]["2"]["frames"]
    assert run.incomplete
    assert f"CoBo[1] has {early:,} events where the other has {cobo0['events']:,}" in run.problems
    assert (f"{name} changed after filing (router router0: {before:,} bytes when counted, "
            f"{after:,} after)") in run.problems
    # The run page and the run list show it in red, with its problems.
    page = await sync_to_async(page_of)(f"/runs/{run.pk}/")
    assert "run-incomplete" in page and "changed after filing" in page
    assert "run-incomplete" in await sync_to_async(page_of)("/runs/")


def page_of(url: str) -> str:
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.create_user(f"watcher{User.objects.count()}"))
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


async def test_a_filing_error_is_recorded_once_then_cleared(system, router):
    group, servers, engine = await system(1)
    run = await started(group, 1)
    # Whatever the exception, it is recorded: here a configuration that is not one.
    await sync_to_async(RunMetadata.objects.filter(pk=run.pk).update)(
        configs={"CoBo[0]": "not a set"})
    assert (await run_command("ready")).status == "done"
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=run.pk).exclude(
        filing_error="").first(), 20, "filing to fail")
    assert run.filing_error == ("XmlError: configuration 'not a set': expected "
                                "DESCRIBE/PREPARE/CONFIGURE")
    for _ in range(3):
        assert not await engine.filer.file(run)

    def errors():
        return list(Event.objects.filter(run=run, source="filing", level="error")
                    .values_list("message", flat=True))
    assert await sync_to_async(errors)() == [f"filing run 0 failed: {run.filing_error}"]
    page = await sync_to_async(page_of)(f"/runs/{run.pk}/")
    assert "expected DESCRIBE/PREPARE/CONFIGURE" in page
    # Put right, the next attempt files it and the error is gone.
    await sync_to_async(RunMetadata.objects.filter(pk=run.pk).update)(
        configs={"CoBo[0]": "cobo0/experiment/experiment"})
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=run.pk, filed=True).first(),
                         20, "the run filed")
    assert run.filing_error == "" and len(await sync_to_async(errors)()) == 1
    check_manifest_is_the_disk(run, "router0", router.workdir)
    check_counts_are_what_was_sent(run, group, 0)
    assert not run.incomplete and run.problems == []


# The sentences, from the run keeper's coverage and from the counts ----------------------

def test_coverage_problems_name_outages_and_exclusions_during_the_run(settings):
    settings.TIME_ZONE = "Europe/Paris"
    timezone.activate("Europe/Paris")
    try:
        coverage = {
            "boards": {"CoBo[0]": {"took_part": True, "from": "2026-11-24T20:00:00+00:00",
                                   "to": "2026-11-24T21:00:00+00:00", "excluded": []},
                       "CoBo[1]": {"took_part": True, "excluded": [
                           {"from": "2026-11-24T20:30:00+00:00", "to": None,
                            "reason": "AsAd 2 tripped"}]},
                       "CoBo[2]": {"took_part": False, "excluded": [
                           {"from": "2026-11-20T10:00:00+00:00", "to": None, "reason": "x"}]}},
            "routers": {"router1": {"took_part": True, "outages": [
                {"from": "2026-11-24T20:04:10+00:00", "to": "2026-11-24T20:06:40+00:00"},
                {"from": "2026-11-24T22:59:59+00:00", "to": "2026-11-25T00:00:01+00:00"}]},
                "router2": "not a mapping"}}
        assert coverage_problems(coverage) == [
            "router router1 was offline during the run from 21:04:10 to 21:06:40",
            "router router1 was offline during the run from 23:59:59 to 2026-11-25 01:00:01",
            "CoBo[1] was excluded during the run from 21:30:00 to the end of the run: "
            "AsAd 2 tripped"]
    finally:
        timezone.deactivate()
    assert coverage_problems({}) == coverage_problems(None) == []
    assert coverage_problems({"routers": {"r": {"outages": [{"from": "yesterday"}]}}}) == [
        "router r was offline during the run from yesterday to the end of the run"]


def events_of(**counts: int) -> dict:
    return {name.replace("_", "[") + "]": {"events": max(c), "asads": {
        str(a): {"frames": n} for a, n in enumerate(c)}} for name, c in counts.items()}


def test_a_cobo_or_asad_is_short_below_99_percent_and_3_events():
    assert short_counts(events_of(CoBo_0=[5310] * 4, CoBo_1=[5310] * 4, CoBo_2=[1204] * 4)) == [
        "CoBo[2] has 1,204 events where the others have 5,310"]
    assert short_counts(events_of(CoBo_0=[1000] * 4, CoBo_1=[985] * 4, CoBo_2=[999] * 4)) == [
        "CoBo[1] has 985 events where the others have up to 1,000"]
    # A trigger or two apart is no loss, nor 1 % of a long run.
    assert short_counts(events_of(CoBo_0=[12] * 4, CoBo_1=[10] * 4)) == []
    assert short_counts(events_of(CoBo_0=[1000] * 4, CoBo_1=[991] * 4)) == []
    assert short_counts(events_of(CoBo_0=[500, 500, 20, 500])) == [
        "CoBo[0] AsAd 2 has 20 frames where its other AsAds have up to 500"]
    assert short_counts({}) == []
