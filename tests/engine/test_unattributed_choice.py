"""Data written while no run was open, end to end: a real engine against emulators and a
data router notices the files, the status page offers the choice and shows the engine's
alarm until it is acknowledged, the operator's choice goes through
``unattributed.decide_unattributed``, the engine moves the files, and Start goes again.

(tests/engine/test_run_keeper.py checks the keeper's side with the choice written
straight into the database; here it goes through the service and the page.)
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from attpcdaq.daq import unattributed
from attpcdaq.daq.models import Event, RunMetadata, UnattributedData

from .conftest import wait_for
from .test_engine import run_command

pytestmark = pytest.mark.django_db(transaction=True)
EXPERIMENT = "e20009 test"
NOTE = "CoBo[0] kept sending after its server restarted — ask Ana"


def operator_client() -> tuple[User, Client]:
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    client = Client()
    client.force_login(user)
    return user, client


def fragment(client: Client) -> str:
    return client.get(reverse("daq:status_fragment"), HTTP_HX_REQUEST="true").content.decode()


def banners(page: str) -> str:
    """The banners region of a page (alarms), without the events table below."""
    start = page.index('<div id="banners"')
    return page[start:page.index('<section id="unattributed"', start)]


async def page_showing(client: Client, text: str, what: str) -> str:
    """The live fragment, once it shows ``text`` (the page polls it every second)."""
    def showing():
        page = fragment(client)
        return page if text in page else None
    return await wait_for(showing, 10, what)


async def test_files_written_with_no_run_open_are_set_aside_through_the_page_and_service(
        system, router):
    group, servers, engine = await system(1)
    user, client = await sync_to_async(operator_client)()
    assert (await run_command("ready")).status == "done"
    started = await run_command("running")
    assert started.status == "done"
    await wait_for(lambda: any(p.stat().st_size for p in router.workdir.glob("*.graw")), 10,
                   "data on the router")
    assert (await run_command("ready")).status == "done"
    await wait_for(lambda: RunMetadata.objects.get(pk=started.run_id).filed, 30, "the run filed")
    late = {"CoBo0_AsAd0_2026-12-01T21:04:10.000_0000.graw": b"\0" * 4096,
            "CoBo0_AsAd1_2026-12-01T21:04:10.001_0000.graw": b"\0" * 2048}
    for name, data in late.items():
        (router.workdir / name).write_bytes(data)

    # The page shows them, with both choices, and the engine's alarm; so does the API.
    record = await wait_for(lambda: UnattributedData.objects.first(), 10, "the files noticed")
    page = await page_showing(client, f'id="unattributed-{record.pk}"', "the panel")
    panel = page[page.index('<section id="unattributed"'):]
    panel = panel[:panel.index("</section>")]
    assert "router0" in panel and "2 files, 6.1 kB" in panel
    assert "File into run 0…" in panel and "Set aside…" in panel
    alarm = ("2 file(s) on data router router0 were written while no run was open: choose "
             "on the status page where they go")
    page = await page_showing(client, alarm, "the engine's alarm on the page")
    assert alarm in banners(page) and 'id="alarm-banner"' in page and "Acknowledge" in page
    status = await sync_to_async(lambda: client.get("/api/status").json())()
    assert [(u["id"], u["files"], u["bytes"], u["decision"]) for u in status["unattributed"]] \
        == [(record.pk, 2, 6144, "")]
    (listed,) = [a for a in status["alarms"] if a["message"] == alarm]
    assert listed["source"] == "router0"
    refused = await run_command("running")
    assert refused.status == "failed" and "choose on the status page" in refused.error

    # The choice, through the service as the page and the API make it.
    decided = await sync_to_async(unattributed.decide_unattributed)(user, record, "aside",
                                                                note=NOTE)
    assert (decided.decision, decided.note, decided.decided_by_id) == ("aside", NOTE, user.pk)
    settled = await wait_for(lambda: UnattributedData.objects.filter(
        pk=record.pk).exclude(settled_at=None).first(), 20, "the files moved")
    assert settled.error == ""
    assert list(router.workdir.glob("*.graw")) == []
    (folder,) = (router.workdir / EXPERIMENT / "unattributed").iterdir()
    assert {p.name: p.stat().st_size for p in folder.iterdir()} == {
        name: len(data) for name, data in late.items()}
    page = await sync_to_async(fragment)(client)
    assert ">moved<" in page and "aside, as alice chose" in page and "ask Ana" in page
    assert "Start is refused" not in page and "File into run" not in page
    status = await sync_to_async(lambda: client.get("/api/status").json())()
    assert status["unattributed"] == []
    assert await sync_to_async(Event.objects.filter(
        level="info", source="router0", message__startswith="alice chose to set them aside "
        f"in {EXPERIMENT}/unattributed/").exists)()

    # The alarm stays until someone acknowledges it, on the page.
    assert alarm in banners(page)
    answer = await sync_to_async(client.post)(
        reverse("daq:event_acknowledge", args=[listed["id"]]), HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    assert alarm not in banners(await sync_to_async(fragment)(client))
    status = await sync_to_async(lambda: client.get("/api/status").json())()
    assert listed["id"] not in {a["id"] for a in status["alarms"]}

    # With the choice made and the files moved, Start goes again.
    again = await run_command("running")
    assert (again.status, again.error) == ("done", "")
    assert (await run_command("ready")).status == "done"
