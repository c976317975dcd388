"""Export and import of the whole setup: the exact round trip, a rejected import naming
every problem with its path and changing nothing, the web page's download and upload,
and ``python -m attpcdaq setup export|import`` against the test database."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from attpcdaq.daq import setup
from attpcdaq.daq.models import (
    ConfigId,
    DataRouter,
    DataSource,
    ECCServer,
    Experiment,
    RunMetadata,
    UnattributedData,
)

pytestmark = pytest.mark.django_db


def make_setup():
    """A setup with what tends to break a round trip: unicode, IPv6, spaces, nulls."""
    routers = [DataRouter.objects.create(name="DataRouter0", ip_address="127.0.0.40",
                                         port=46005, working_dir="/data/run s/ü"),
               DataRouter.objects.create(name="routeur é", ip_address="::1", port=46006,
                                         connection_type="ZBUF", ssh_host="daq@mac-mini2",
                                         log_path="/var/log/dataRouter.log")]
    cobo = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.20", port=8083,
                                    ssh_host="mac1", log_path="/home/daq/ecc.log",
                                    config_dir="/home/daq/configs")
    mutant = ECCServer.objects.create(name="Mutant", ip_address="127.0.0.21", port=8084,
                                      enabled=False)
    DataSource.objects.create(name="CoBo[0]", ecc_server=cobo, data_router=routers[0])
    DataSource.objects.create(name="CoBo[1]", ecc_server=cobo, data_router=None)
    DataSource.objects.create(name="Mutant[master]", ecc_server=mutant, data_router=routers[1])


def everything():
    return (list(ECCServer.objects.order_by("pk").values()),
            list(DataRouter.objects.order_by("pk").values()),
            list(DataSource.objects.order_by("pk").values()))


def test_export_is_the_whole_setup():
    make_setup()
    document = setup.export_setup()
    assert list(document) == ["version", "ecc_servers", "data_routers", "data_sources"]
    assert document["version"] == 1
    assert document["ecc_servers"][0] == {
        "name": "CoBo[0]", "ip_address": "127.0.0.20", "port": 8083, "ssh_host": "mac1",
        "log_path": "/home/daq/ecc.log", "config_dir": "/home/daq/configs", "enabled": True}
    assert document["data_sources"] == [
        {"name": "CoBo[0]", "ecc_server": "CoBo[0]", "data_router": "DataRouter0"},
        {"name": "CoBo[1]", "ecc_server": "CoBo[0]", "data_router": None},
        {"name": "Mutant[master]", "ecc_server": "Mutant", "data_router": "routeur é"}]
    assert "routeur é" in setup.dumps(document)  # UTF-8 as is, not \u escapes


def test_export_import_export_gives_the_same_text():
    make_setup()
    text = setup.dumps(setup.export_setup())
    # Into an empty setup...
    DataSource.objects.all().delete()
    ECCServer.objects.all().delete()
    DataRouter.objects.all().delete()
    summary = setup.import_text(text)
    assert summary.text() == "created 2 ECC servers, 2 data routers, 3 data sources"
    assert setup.dumps(setup.export_setup()) == text
    # ...and into itself: nothing changes, not even the ids.
    before = everything()
    assert setup.import_text(text.encode()).text() == "nothing changed"
    assert everything() == before
    assert setup.dumps(setup.export_setup()) == text


def test_an_import_changes_what_differs_and_keeps_the_rest():
    make_setup()
    kept = ECCServer.objects.get(name="CoBo[0]")
    config = ConfigId.objects.create(ecc_server=kept, describe="c", prepare="e", configure="e")
    ECCServer.objects.filter(pk=kept.pk).update(selected_config=config)
    document = setup.export_setup()
    document["ecc_servers"][0]["port"] = 9000
    del document["ecc_servers"][1]           # Mutant goes, with its source
    document["data_sources"] = [s for s in document["data_sources"] if s["ecc_server"] !=
                                "Mutant"]
    document["data_sources"][1]["data_router"] = "routeur é"   # CoBo[1] gets a router
    summary = setup.apply_setup(document)
    assert summary.updated["ECC servers"] == ["CoBo[0]"]
    assert summary.removed["ECC servers"] == ["Mutant"]
    server = ECCServer.objects.get()
    assert (server.pk, server.port, server.selected_config_id) == (kept.pk, 9000, config.pk)
    assert setup.export_setup() == document


BAD = {
    "version": 2,
    "colour": "red",
    "ecc_servers": [
        {"name": "CoBo[0]", "ip_address": "127.0.0.20", "port": 8083, "ssh_host": "",
         "log_path": "", "config_dir": "", "enabled": True},
        {"name": "cobo[0]", "ip_address": "127.0.0.20", "port": 8083, "ssh_host": "",
         "log_path": "", "config_dir": "", "enabled": True},
        {"name": "../x", "ip_address": "10.0.0.300", "port": 70000,
         "ssh_host": "-oProxyCommand=x", "log_path": "relative", "config_dir": "/a/../b",
         "enabled": "yes"},
        {"name": "CoBo[3]", "ip_address": "127.0.0.23", "port": "8083", "ssh_host": "a b",
         "log_path": "/x\x00", "config_dir": "", "enabled": True, "extra": 1},
        "not an object",
    ],
    "data_routers": [
        {"name": "DataRouter0", "ip_address": "127.0.0.40", "port": 46005,
         "connection_type": "UDP", "ssh_host": "", "working_dir": "data", "log_path": ""},
        {"name": "r\u202e1", "ip_address": "127.0.0.41", "port": True, "ssh_host": "",
         "working_dir": "", "log_path": ""},
    ],
    "data_sources": [
        {"name": "CoBo[0]", "ecc_server": "CoBo[0]", "data_router": "DataRouter0"},
        {"name": "CoBo[0]", "ecc_server": "CoBo[0]", "data_router": None},
        {"name": "CoBo[256]", "ecc_server": "nowhere", "data_router": "nobody"},
        {"name": "Mutant[master]", "ecc_server": 3, "data_router": 4},
    ],
}

BAD_PROBLEMS = [
    "colour: unknown key (known: version, ecc_servers, data_routers, data_sources)",
    "version: '2' is not a version this program reads (1)",
    "ecc_servers[2].name: may not be '.' or '..' or contain a slash",
    "ecc_servers[2].ip_address: is not a valid IP address",
    "ecc_servers[2].port: must be 1-65535",
    "ecc_servers[2].ssh_host: may not start with '-' (ssh would read it as an option)",
    "ecc_servers[2].log_path: must be an absolute path (starting with /)",
    "ecc_servers[2].config_dir: may not contain '..'",
    "ecc_servers[2].enabled: must be true or false",
    "ecc_servers[3].extra: unknown field (known: name, ip_address, port, ssh_host, "
    "log_path, config_dir, enabled)",
    "ecc_servers[3].port: must be a whole number from 1 to 65535",
    "ecc_servers[3].ssh_host: may not contain spaces",
    "ecc_servers[3].log_path: may not contain NUL characters",
    "ecc_servers[4]: must be an object",
    "data_routers[0].connection_type: must be one of TCP, FDT, ICE, ZBUF",
    "data_routers[0].working_dir: must be an absolute path (starting with /)",
    "data_routers[1].connection_type: missing",
    "data_routers[1].name: may not contain invisible or direction-changing characters "
    "(U+202E)",
    "data_routers[1].port: must be a whole number from 1 to 65535",
    "ecc_servers[1].name: the ECC server 'cobo[0]' is already ecc_servers[0] (names are "
    "unique, letter case aside)",
    "ecc_servers[1].port: 127.0.0.20:8083 is already the address of ECC server "
    "ecc_servers[0]",
    "data_sources[1].name: CoBo[0] is already linked by data_sources[0] on the same ECC "
    "server: the real server keeps only the first link of a sender",
    "data_sources[2].name: CoBo numbers go from 0 to 255",
    "data_sources[2].ecc_server: there is no ECC server named 'nowhere' in ecc_servers",
    "data_sources[2].data_router: there is no data router named 'nobody' in data_routers",
    "data_sources[3].ecc_server: must be the name of an ECC server",
    "data_sources[3].data_router: must be the name of a data router, or null",
]


def test_a_rejected_import_names_every_problem_and_changes_nothing():
    make_setup()
    before = everything()
    with pytest.raises(setup.InvalidSetup) as rejected:
        setup.import_text(json.dumps(BAD))
    assert rejected.value.problems == BAD_PROBLEMS
    assert everything() == before


@pytest.mark.parametrize(("text", "problem"), [
    (b"", "not JSON: Expecting value at line 1, column 1"),
    (b"{\"version\": 1,", "not JSON: Expecting property name enclosed in double quotes at "
     "line 1, column 15"),
    (b"\xff\xfe", "the file is not UTF-8 text (byte 0)"),
    (b"[1, 2]", "the document must be a JSON object with version, ecc_servers, data_routers "
     "and data_sources"),
    (b"[" * 100_000, "not JSON: nested too deeply"),
    (b" " * (setup.MAX_DOCUMENT_BYTES + 1), f"the file is larger than "
     f"{setup.MAX_DOCUMENT_BYTES} bytes"),
])
def test_what_is_not_a_setup_document(text, problem):
    with pytest.raises(setup.InvalidSetup) as rejected:
        setup.parse(text)
    assert rejected.value.problems == [problem]


def test_a_document_missing_its_lists():
    assert setup.validate_document({"version": 1}) == [
        "ecc_servers: missing (a list, maybe empty)",
        "data_routers: missing (a list, maybe empty)",
        "data_sources: missing (a list, maybe empty)"]
    assert setup.validate_document({"version": 1, "ecc_servers": {}, "data_routers": [],
                                    "data_sources": []}) == ["ecc_servers: must be a list"]


def test_an_import_is_refused_under_a_run_and_while_files_wait_for_a_choice():
    make_setup()
    text = setup.dumps(setup.export_setup())
    document = setup.export_setup()
    document["data_routers"] = document["data_routers"][:1]
    document["data_sources"] = [s for s in document["data_sources"]
                                if s["data_router"] != "routeur é"]
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    run = RunMetadata.objects.create(experiment=experiment, run_number=4, status="running")
    before = everything()
    with pytest.raises(setup.SetupRefused, match="run 4 of e20009 is running"):
        setup.apply_setup(document)
    RunMetadata.objects.filter(pk=run.pk).update(status="stopped")
    UnattributedData.objects.create(experiment=experiment,
                                    router=DataRouter.objects.get(name="routeur é"))
    with pytest.raises(setup.SetupRefused, match="unattributed files of routeur é wait"):
        setup.apply_setup(document)
    assert everything() == before
    assert setup.import_text(text).text() == "nothing changed"  # that router stays


# The web page -----------------------------------------------------------------------------

@pytest.fixture
def admin(client):
    client.force_login(User.objects.create_superuser("chief", password="pw"))


def test_download_and_upload(client, admin):
    make_setup()
    answer = client.get(reverse("daq:setup_export"))
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json; charset=utf-8"
    assert answer["Content-Disposition"].startswith('attachment; filename="attpcdaq-setup-')
    text = answer.content.decode()
    assert text == setup.dumps(setup.export_setup())
    ECCServer.objects.all().delete()
    DataRouter.objects.all().delete()
    upload = SimpleUploadedFile("setup.json", text.encode(), "application/json")
    answer = client.post(reverse("daq:setup_import"), {"file": upload})
    assert answer.status_code == 302
    assert client.get(reverse("daq:setup_export")).content.decode() == text
    page = client.get(reverse("daq:setup")).content.decode()
    assert "Setup imported: created 2 ECC servers, 2 data routers, 3 data sources." in page


def test_a_rejected_upload_lists_every_problem_beside_the_field(client, admin):
    make_setup()
    before = everything()
    upload = SimpleUploadedFile("bad.json", json.dumps(BAD).encode(), "application/json")
    answer = client.post(reverse("daq:setup_import"), {"file": upload})
    assert answer.status_code == 400
    page = answer.content.decode()
    assert f"The file has {len(BAD_PROBLEMS)} problems, nothing was changed:" in page
    assert page.count("<li>", page.index('id="import-problems"')) >= len(BAD_PROBLEMS)
    assert "ecc_servers[2].port: must be 1-65535" in page
    assert "data_sources[2].data_router: there is no data router named &#x27;nobody&#x27;" \
        in page
    assert everything() == before
    answer = client.post(reverse("daq:setup_import"), {})
    assert answer.status_code == 400 and b"Choose a setup file" in answer.content


def test_an_upload_under_a_run_is_refused(client, admin):
    make_setup()
    text = setup.dumps(setup.export_setup())
    ECCServer.objects.filter(name="Mutant").update(state=ECCServer.READY)
    before = everything()
    answer = client.post(reverse("daq:setup_import"),
                         {"file": SimpleUploadedFile("s.json", text.encode())})
    assert answer.status_code == 409
    assert "The setup was not imported: every ECC server concerned must be Idle: Mutant is " \
           "Ready" in answer.content.decode()
    assert everything() == before


# The command line ------------------------------------------------------------------------

def attpcdaq(settings, *args, stdin: str | None = None):
    database = settings.DATABASES["default"]
    url = (f"sqlite:///{database['NAME']}" if database["ENGINE"].endswith("sqlite3") else
           f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
           f"{database['NAME']}")
    return subprocess.run([sys.executable, "-m", "attpcdaq", "setup", *args],
                          capture_output=True, text=True, input=stdin, timeout=60,
                          env={**os.environ, "ATTPCDAQ_DATABASE_URL": url})


@pytest.mark.django_db(transaction=True)
def test_the_command_line_exports_and_imports(settings, tmp_path):
    make_setup()
    expected = setup.dumps(setup.export_setup())
    target = tmp_path / "setup.json"
    done = attpcdaq(settings, "export", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_text(encoding="utf-8") == expected
    done = attpcdaq(settings, "export", "-")
    assert done.returncode == 0 and done.stdout == expected

    changed = copy.deepcopy(setup.export_setup())
    changed["ecc_servers"][0]["port"] = 9001
    done = attpcdaq(settings, "import", "-", stdin=json.dumps(changed))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported the input: updated 1 ECC servers\n"
    assert ECCServer.objects.get(name="CoBo[0]").port == 9001
    done = attpcdaq(settings, "import", str(target))
    assert done.returncode == 0, done.stderr
    assert setup.dumps(setup.export_setup()) == expected


@pytest.mark.django_db(transaction=True)
def test_a_rejected_command_line_import_prints_every_problem_exits_1_changes_nothing(
        settings, tmp_path):
    make_setup()
    before = everything()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BAD), encoding="utf-8")
    done = attpcdaq(settings, "import", str(bad))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == (f"attpcdaq setup: {bad} was not imported ({len(BAD_PROBLEMS)} "
                        "problems, nothing changed):")
    assert [line.strip() for line in lines[1:]] == BAD_PROBLEMS
    assert everything() == before
    # --check says the same and never changes anything either.
    assert attpcdaq(settings, "import", "--check", str(bad)).returncode == 1
    good = tmp_path / "good.json"
    good.write_text(setup.dumps(setup.export_setup()), encoding="utf-8")
    checked = attpcdaq(settings, "import", "--check", str(good))
    assert checked.returncode == 0 and "is a valid setup" in checked.stderr
    # A refusal exits 1 too; a file that cannot be read exits 2.
    ECCServer.objects.filter(name="CoBo[0]").update(state=ECCServer.RUNNING)
    refused = attpcdaq(settings, "import", str(good))
    assert refused.returncode == 1 and "CoBo[0] is Running" in refused.stderr
    ECCServer.objects.filter(name="CoBo[0]").update(state=ECCServer.IDLE)
    missing = attpcdaq(settings, "import", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unwritable = attpcdaq(settings, "export", str(tmp_path / "no" / "dir" / "x.json"))
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr
    assert everything() == before
