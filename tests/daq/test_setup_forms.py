"""The setup pages: each validation rule of an ECC server, data router and data source,
hostile text, one link per sender, refusals under a run or a busy server, and admins
only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from attpcdaq.daq import setup
from attpcdaq.daq.models import DataRouter, DataSource, ECCServer, Experiment, RunMetadata
from attpcdaq.daq.setup_forms import DataRouterForm, DataSourceForm, ECCServerForm

pytestmark = pytest.mark.django_db

BIDI = "CoBo\u202eevil"


def server_data(**changes):
    return {"name": "CoBo[0]", "ip_address": "127.0.0.20", "port": "8083", "ssh_host": "",
            "log_path": "", "config_dir": "", "enabled": "on", **changes}


def router_data(**changes):
    return {"name": "DataRouter0", "ip_address": "127.0.0.20", "port": "46005",
            "connection_type": "TCP", "ssh_host": "", "working_dir": "", "log_path": "",
            **changes}


def errors(form_class, data, instance=None) -> dict:
    form = form_class(data, instance=instance)
    assert not form.is_valid()
    return form.errors


@pytest.fixture
def server():
    return ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.20", port=8083)


@pytest.fixture
def router():
    return DataRouter.objects.create(name="DataRouter0", ip_address="127.0.0.20", port=46005)


@pytest.fixture
def admin(client):
    user = User.objects.create_user("root", password="pw")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    client.force_login(user)
    return user


@pytest.fixture
def open_run():
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    return RunMetadata.objects.create(experiment=experiment, run_number=7, status="running")


# ECC servers ------------------------------------------------------------------------------

def test_a_valid_server_is_saved_as_given():
    form = ECCServerForm(server_data(name="Détecteur ü", ip_address="FE80::0:1",
                                     ssh_host="daq@mac-mini1.local",
                                     log_path="/home/daq/ecc log.txt",
                                     config_dir="/home/daq/configs/"))
    assert form.is_valid(), form.errors
    saved = form.save()
    saved.refresh_from_db()
    assert (saved.name, saved.ip_address, saved.port) == ("Détecteur ü", "fe80::1", 8083)
    assert saved.ssh_host == "daq@mac-mini1.local"
    assert saved.log_path == "/home/daq/ecc log.txt"


@pytest.mark.parametrize(("name", "message"), [
    ("", "This field is required."),
    ("a/b", "Slash"),
    ("..", "'..'"),
    ("-rf", "may not start with '-'"),
    (BIDI, "U+202E"),
    ("CoBo\x07", "control characters"),
    ("CoBo\x00", "Null characters are not allowed."),
    ("x" * 101, "at most 80 characters"),
])
def test_server_name_rules(name, message):
    assert message.lower() in errors(ECCServerForm, server_data(name=name))["name"][0].lower()


def test_server_names_are_unique_letter_case_aside(server):
    message = errors(ECCServerForm, server_data(name="cobo[0]", ip_address="127.0.0.21"))
    assert message["name"] == ["There is already a ECC server named 'CoBo[0]' (names are "
                               "unique, letter case aside)."]
    # Editing it under its own name is fine.
    form = ECCServerForm(server_data(name="COBO[0]"), instance=server)
    assert form.is_valid(), form.errors


@pytest.mark.parametrize(("address", "message"), [
    ("", "This field is required."),
    ("10.0.0.300", "not a valid IP address"),
    ("10.0.0", "not a valid IP address"),
    ("mac mini", "may not contain spaces"),
    ("host;rm -rf /", "may not contain spaces"),
    ("host;rm", "neither an IP address nor a host name"),
    ("-host", "neither an IP address nor a host name"),
    ("a" * 64 + ".org", "neither an IP address nor a host name"),
    ("fe80::1%eth0", "neither an IP address nor a host name"),
    ("mac\u202e1", "U+202E"),
])
def test_server_address_rules(address, message):
    got = errors(ECCServerForm, server_data(ip_address=address))["ip_address"][0]
    assert message.lower() in got.lower()


@pytest.mark.parametrize("address", ["mac-mini1.local", "daq-cobo3", "10.0.0.20", "::1"])
def test_an_ip_address_or_a_host_name_is_kept(address):
    form = ECCServerForm(server_data(ip_address=address))
    assert form.is_valid(), form.errors
    assert form.save().ip_address == address


@pytest.mark.parametrize(("port", "message"), [
    ("0", "must be 1-65535"), ("65536", "must be 1-65535"), ("-1", "must be 1-65535"),
    ("eighty", "must be a whole number from 1 to 65535"), ("", "This field is required."),
])
def test_port_rules(port, message):
    assert errors(ECCServerForm, server_data(port=port))["port"] == [message]
    assert errors(DataRouterForm, router_data(port=port))["port"] == [message]


@pytest.mark.parametrize("ssh_host", ["daq@mac-mini1", "mac1.lab.example.org", "cobo_alias",
                                      "daq@10.0.0.20", "daq@::1", "daq.user@host"])
def test_ssh_hosts_accepted(ssh_host):
    form = ECCServerForm(server_data(ssh_host=ssh_host))
    assert form.is_valid(), form.errors


@pytest.mark.parametrize(("ssh_host", "message"), [
    ("-oProxyCommand=touch /tmp/x", "may not contain spaces"),
    ("-oProxyCommand=x", "may not start with '-'"),
    ("daq@-x", "the host may not start with '-'"),
    ("mac mini", "may not contain spaces"),
    ("host;reboot", "may not contain ';'"),
    ("$(reboot)", "may not contain '$' '(' ')'"),
    ("`reboot`", "may not contain '`'"),
    ("'quoted'", "may not contain \"'\""),
    ("daq@", "has no host after '@'"),
    ("da q@host", "may not contain spaces"),
    ("host:22", "':' is allowed only in an IPv6 address"),
    ("mac\u202e", "U+202E"),
    ("mac\t1", "control characters"),
    ("h" * 201, "at most 200 characters"),
])
def test_ssh_host_rules(ssh_host, message):
    got = errors(ECCServerForm, server_data(ssh_host=ssh_host))["ssh_host"][0]
    assert message.lower() in got.lower(), got


@pytest.mark.parametrize(("field", "value", "message"), [
    ("log_path", "ecc.log", "must be an absolute path"),
    ("log_path", "~/ecc.log", "must be an absolute path"),
    ("log_path", "/home/daq/../../etc/passwd", "may not contain '..'"),
    ("log_path", "/home/daq/", "must name a file"),
    ("log_path", "/home/\x1b[31mdaq", "control characters"),
    ("log_path", "/home/daq\u2066/x", "U+2066"),
    ("log_path", "/" + "a" * 600, "at most 500 characters"),
    ("config_dir", "configs", "must be an absolute path"),
    ("config_dir", "/a/../b", "may not contain '..'"),
])
def test_path_rules(field, value, message):
    got = errors(ECCServerForm, server_data(**{field: value}))[field][0]
    assert message.lower() in got.lower(), got


def test_two_servers_on_one_address_and_port_are_refused(server):
    got = errors(ECCServerForm, server_data(name="CoBo[1]"))
    assert got["port"] == ["127.0.0.20:8083 is already the address of CoBo[0]."]
    assert ECCServerForm(server_data(name="CoBo[1]", port="8084")).is_valid()


def test_an_address_change_is_refused_while_the_server_is_not_idle(server):
    ECCServer.objects.filter(pk=server.pk).update(state=ECCServer.READY)
    server.refresh_from_db()
    got = errors(ECCServerForm, server_data(ip_address="127.0.0.99"), instance=server)
    assert "CoBo[0] is Ready" in got["__all__"][0] and "address" in got["__all__"][0]
    # What does not touch the boards may change.
    server.refresh_from_db()
    form = ECCServerForm(server_data(log_path="/var/log/ecc.log"), instance=server)
    assert form.is_valid(), form.errors


def test_nothing_changes_under_an_open_run(server, open_run):
    got = errors(ECCServerForm, server_data(log_path="/var/log/ecc.log"), instance=server)
    assert got["__all__"] == ["Run 7 of e20009 is running: the setup cannot change under a "
                              "run."]
    assert "cannot change under a run" in errors(DataRouterForm, router_data())["__all__"][0]


# Data routers -------------------------------------------------------------------------------

def test_router_rules(router):
    got = errors(DataRouterForm, router_data(name="dataRouter0", connection_type="UDP",
                                             working_dir="data", ip_address="a b"))
    assert "already a data router named 'DataRouter0'" in got["name"][0]
    assert "UDP is not one of the available choices" in got["connection_type"][0]
    assert "absolute" in got["working_dir"][0]
    assert "spaces" in got["ip_address"][0]
    ok = DataRouterForm(router_data(name="DataRouter1", port="46006",
                                    working_dir="/data/router 1/"))
    assert ok.is_valid(), ok.errors


def test_a_router_cannot_move_while_its_boards_are_described(server, router):
    DataSource.objects.create(name="CoBo[0]", ecc_server=server, data_router=router)
    ECCServer.objects.filter(pk=server.pk).update(state=ECCServer.DESCRIBED)
    got = errors(DataRouterForm, router_data(port="46010"), instance=router)
    assert "CoBo[0] is Described" in got["__all__"][0]


# Data sources ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CoBo[0]", "CoBo[9]", "CoBo[255]", "Mutant[master]",
                                  "Mutant[slave_2]"])
def test_sender_ids_accepted(server, router, name):
    form = DataSourceForm({"name": name, "ecc_server": server.pk, "data_router": router.pk})
    assert form.is_valid(), form.errors


@pytest.mark.parametrize("name", ["CoBo[256]", "CoBo[01]", "cobo[1]", "CoBo1", "CoBo[1 ]",
                                  "CoBo[-1]", "Mutant[]", "Mutant[a b]", "Mutant[../x]",
                                  "CoBo[\u202e1]", "CoBo[1]\x00", "x" * 120])
def test_sender_ids_refused(server, router, name):
    data = {"name": name, "ecc_server": server.pk, "data_router": router.pk}
    got = errors(DataSourceForm, data)["name"][0]
    assert ("not a data sender id" in got or "CoBo numbers go from 0 to 255" in got
            or "Null characters" in got or "at most 80 characters" in got), got


def test_a_sender_linked_twice_on_one_server_is_refused_naming_it(server, router):
    DataSource.objects.create(name="CoBo[0]", ecc_server=server, data_router=router)
    other = DataRouter.objects.create(name="DataRouter1", ip_address="127.0.0.21", port=46005)
    got = errors(DataSourceForm, {"name": "CoBo[0]", "ecc_server": server.pk,
                                  "data_router": other.pk})
    assert got["name"] == ["CoBo[0] is already linked (to DataRouter0) on CoBo[0]: the ECC "
                           "server keeps only the first link of a sender."]
    second = ECCServer.objects.create(name="CoBo[1]", ip_address="127.0.0.21")
    got = errors(DataSourceForm, {"name": "CoBo[0]", "ecc_server": second.pk,
                                  "data_router": other.pk})
    assert "on the ECC server CoBo[0]: a board has one sender id" in got["name"][0]
    assert DataSource.objects.count() == 1


def test_a_source_cannot_be_added_to_a_server_that_is_not_idle(server, router):
    ECCServer.objects.filter(pk=server.pk).update(state=ECCServer.PREPARED)
    got = errors(DataSourceForm, {"name": "CoBo[1]", "ecc_server": server.pk,
                                  "data_router": router.pk})
    assert got["__all__"] == ["The ECC server must be Idle to change its boards' links: "
                              "CoBo[0] is Prepared."]


def test_an_unknown_server_or_router_is_said_beside_its_field(server):
    got = errors(DataSourceForm, {"name": "CoBo[1]", "ecc_server": "999",
                                  "data_router": "x'; drop"})
    assert got["ecc_server"] == ["Choose one of the ECC servers listed."]
    assert got["data_router"] == ["Choose one of the data routers listed."]


# The pages ------------------------------------------------------------------------------------

def test_only_admins_see_the_setup(client, server):
    url = reverse("daq:setup")
    assert client.get(url).status_code == 302  # to the login page
    operator = User.objects.create_user("op", password="pw")
    operator.user_permissions.add(Permission.objects.get(codename="control_daq"))
    client.force_login(operator)
    for page in (url, reverse("daq:setup_easy"), reverse("daq:setup_export"),
                 reverse("daq:setup_add", args=["ecc-servers"])):
        refused = client.get(page)
        assert refused.status_code == 403 and b"admin role" in refused.content
    assert client.post(reverse("daq:setup_remove", args=["ecc-servers", server.pk])
                       ).status_code == 403
    assert ECCServer.objects.filter(pk=server.pk).exists()
    assert b'id="nav-setup"' not in client.get(reverse("daq:status")).content


def test_add_edit_and_remove_through_the_pages(client, admin):
    page = client.get(reverse("daq:setup"))
    assert page.status_code == 200 and b'id="nav-setup"' in page.content
    added = client.post(reverse("daq:setup_add", args=["ecc-servers"]),
                        server_data(name='<b>"CoBo" ü'))
    assert added.status_code == 302
    server = ECCServer.objects.get()
    page = client.get(reverse("daq:setup")).content.decode()
    assert "&lt;b&gt;&quot;CoBo&quot; ü" in page and '<b>"CoBo"' not in page
    edited = client.post(reverse("daq:setup_edit", args=["ecc-servers", server.pk]),
                         server_data(name="CoBo[0]", port="8090"))
    assert edited.status_code == 302
    server.refresh_from_db()
    assert (server.name, server.port) == ("CoBo[0]", 8090)
    removed = client.post(reverse("daq:setup_remove", args=["ecc-servers", server.pk]))
    assert removed.status_code == 302 and not ECCServer.objects.exists()


def test_a_refused_edit_shows_each_message_beside_its_field_and_changes_nothing(
        client, admin, server):
    url = reverse("daq:setup_edit", args=["ecc-servers", server.pk])
    answer = client.post(url, server_data(name="../etc", port="70000",
                                          ssh_host="-oProxyCommand=x",
                                          log_path="relative\u202e"))
    assert answer.status_code == 400
    page = answer.content.decode()
    for field in ("name", "port", "ssh_host", "log_path"):
        assert f'data-error-for="{field}"' in page
    assert "must be 1-65535" in page and "is-invalid" in page
    server.refresh_from_db()
    assert (server.name, server.port, server.ssh_host) == ("CoBo[0]", 8083, "")


def test_removing_is_refused_under_a_run_and_for_a_server_not_idle(client, admin, server,
                                                                   router):
    source = DataSource.objects.create(name="CoBo[0]", ecc_server=server, data_router=router)
    ECCServer.objects.filter(pk=server.pk).update(state=ECCServer.RUNNING)
    answer = client.post(reverse("daq:setup_remove", args=["ecc-servers", server.pk]))
    assert answer.status_code == 409
    assert "CoBo[0] cannot be removed: every ECC server concerned must be Idle: CoBo[0] is " \
           "Running" in answer.content.decode()
    answer = client.post(reverse("daq:setup_remove", args=["data-sources", source.pk]))
    assert answer.status_code == 409
    answer = client.post(reverse("daq:setup_remove", args=["data-routers", router.pk]))
    assert answer.status_code == 409
    ECCServer.objects.filter(pk=server.pk).update(state=ECCServer.IDLE)
    experiment = Experiment.objects.create(name="e1", is_active=True)
    RunMetadata.objects.create(experiment=experiment, run_number=3, status="stopping")
    answer = client.post(reverse("daq:setup_remove", args=["data-routers", router.pk]))
    assert answer.status_code == 409
    assert "run 3 of e1 is stopping" in answer.content.decode()
    assert (ECCServer.objects.count(), DataRouter.objects.count(),
            DataSource.objects.count()) == (1, 1, 1)


def test_unknown_kinds_and_ids_are_404(client, admin):
    assert client.get("/setup/printers/add/").status_code == 404
    answer = client.post(reverse("daq:setup_remove", args=["ecc-servers", "1; drop"]))
    assert answer.status_code == 404 and b"There is no ECC server with id" in answer.content


def test_the_rules_say_nothing_of_good_values():
    assert setup.check_address("10.0.0.20") == "" and setup.check_address("::1") == ""
    assert setup.check_host_name("mac-mini1.lab.example.org") == ""
    assert setup.check_ssh_host("") == "" and setup.check_path("") == ""
    assert setup.check_source_name("Mutant[master]") == ""
