"""Roles (daq/roles.py): the groups of migration 0009, the checks, the decorators, and
every page and API endpoint against every role.

The lists of pages and endpoints come from the URL resolver and the OpenAPI schema, so
a new page or endpoint without a rule in :data:`PAGE_RULES` / :data:`API_RULES` fails
:func:`test_every_url_has_a_rule`.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver

from attpcdaq.daq import roles
from attpcdaq.daq.api.views import api
from attpcdaq.daq.models import (
    ApiToken,
    Command,
    DataRouter,
    ECCServer,
    Event,
    Experiment,
    LogEntry,
    Observable,
    RunMetadata,
)

pytestmark = pytest.mark.django_db

V, O, A = roles.VIEWER, roles.OPERATOR, roles.ADMIN  # noqa: E741


def make(name: str, role: str | None) -> User:
    """A user with ``role`` given the way an admin would: by group (None: no group)."""
    user = User.objects.create_user(name, password="pw")
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def test_migration_made_the_three_groups():
    assert set(Group.objects.filter(name__in=roles.ROLES).values_list("name", flat=True)) \
        == set(roles.ROLES)
    control = Permission.objects.get(codename="control_daq")
    assert control not in Group.objects.get(name="viewer").permissions.all()
    assert control in Group.objects.get(name="operator").permissions.all()
    assert control in Group.objects.get(name="admin").permissions.all()


def test_checks_per_role():
    plain, viewer = make("plain", None), make("viewer", "viewer")
    operator, admin = make("operator", "operator"), make("admin", "admin")
    superuser = User.objects.create_superuser("root", password="pw")
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    direct = User.objects.create_user("direct", password="pw")
    direct.user_permissions.add(Permission.objects.get(codename="control_daq"))
    direct = User.objects.get(pk=direct.pk)
    table = {plain: V, viewer: V, staff: V, operator: O, direct: O, admin: A, superuser: A}
    for user, expected in table.items():
        assert roles.role_of(user) == expected, user
        assert roles.is_viewer(user)
        assert roles.is_operator(user) == (expected != V), user
        assert roles.is_admin(user) == (expected == A), user
    # The admin group makes an admin even if someone took the permission off it.
    Group.objects.get(name="admin").permissions.clear()
    assert roles.is_operator(User.objects.get(pk=admin.pk))
    assert roles.role_of(AnonymousUser()) is None
    admin.is_active = False
    assert not roles.is_viewer(admin) and not roles.is_admin(admin)


def test_decorators_redirect_anonymous_and_refuse_with_a_page():
    @roles.admin_required
    def view(request):
        return HttpResponse("ok")

    factory = RequestFactory()
    request = factory.get("/somewhere/?x=1")
    request.user = AnonymousUser()
    response = view(request)
    assert response.status_code == 302 and "/login" in response["Location"]
    assert "next=/somewhere/" in response["Location"]
    request = factory.get("/somewhere/")
    request.user = make("op", "operator")
    response = view(request)
    assert response.status_code == 403
    assert b"op may not change the setup" in response.content
    assert b"needs the admin role (you are an operator)" in response.content
    request.user = make("boss", "admin")
    assert view(request).status_code == 200


# Every page and endpoint -------------------------------------------------------------------

#: The role each page needs, by URL name: one role for every method it has, or by method.
PAGE_RULES: dict[str, str | dict[str, str]] = {
    "status": V, "status_fragment": V, "run_list": V, "charts": V, "chart_data": V,
    "run_sheet_row": V, "start_prefill": V, "sheet_csv": V, "sheet_json": V,
    "logbook_csv": V, "run_detail": V, "run_config_file": V, "config_diff": V,
    "eccserver_log": V, "datarouter_log": V, "eccserver_log_request": V,
    "datarouter_log_request": V, "command_result": V, "logbook": V,
    "tokens": V, "token_revoke": V,
    "experiments": {"GET": V, "POST": A},
    "observables": {"GET": V, "POST": O},
    "system_transition": O, "eccserver_transition": O, "eccserver_select_config": O,
    "eccserver_refresh_configs": O, "eccserver_exclude": O, "eccserver_include": O,
    "eccserver_abort": O, "datarouter_exclude": O, "datarouter_include": O,
    "unattributed_decide": O, "event_acknowledge": O, "run_sheet_edit": O,
    "observable_order": O, "observable_edit": O, "observable_delete": O, "start": O,
    "run_metadata_edit": O, "run_limits": O,
    # The logbook entry here is an engine's draft: operators edit and confirm it.
    "log_entry_edit": O, "log_entry_confirm": O,
    "experiment_rename": A, "experiment_activate": A,
}
#: Pages named with these prefixes need this role (the setup pages).
PAGE_PREFIX_RULES = {"setup": A}

#: The role each API operation needs, by "METHOD /path" as in the OpenAPI schema.
API_RULES: dict[str, str] = {
    "GET /api/status": V, "GET /api/runs": V, "GET /api/runs/{number}": V,
    "GET /api/commands/{command_id}": V, "GET /api/ecc-servers/{server_id}/configs": V,
    "POST /api/ecc-servers/{server_id}/log": V, "POST /api/data-routers/{router_id}/log": V,
    "GET /api/experiments": V, "GET /api/tokens": V, "POST /api/tokens": V,
    "DELETE /api/tokens/{token_id}": V,
    "PATCH /api/runs/{number}": O, "POST /api/transition": O,
    "POST /api/ecc-servers/{server_id}/transition": O,
    "POST /api/ecc-servers/{server_id}/configs/refresh": O,
    "POST /api/ecc-servers/{server_id}/config": O,
    "POST /api/ecc-servers/{server_id}/abort": O,
    "POST /api/ecc-servers/{server_id}/exclude": O,
    "POST /api/ecc-servers/{server_id}/include": O,
    "POST /api/data-routers/{router_id}/exclude": O,
    "POST /api/data-routers/{router_id}/include": O,
    "POST /api/unattributed/{record_id}/decide": O, "PATCH /api/runs/{number}/limits": O,
    "POST /api/experiments": A, "PATCH /api/experiments/{experiment_id}": A,
    "POST /api/experiments/{experiment_id}/activate": A,
}
API_PREFIX_RULES = {"/api/setup": A}

#: A body that passes the schema, so the answer is the role check's, not a 422.
API_BODIES = {
    "/api/transition": {"target": "ready"}, "transition": {"target": "ready"},
    "config": {"config": "a/b/c"}, "decide": {"decision": "aside"},
    "exclude": {"reason": "test"}, "include": {"reason": ""}, "abort": {"reason": "x"},
    "limits": {"limit_seconds": 60}, "runs": {"title": "t"},
    "experiments": {"name": "e-new"}, "tokens": {"name": "t"},
}

#: Pages the page's scripts fetch as JSON: anonymous gets 401 with a message, not a
#: redirect to the login page.
JSON_PAGES = {"chart_data"}

_SKIPPED_PREFIXES = ("admin/", "login/", "logout/", "api/")


def _walk(patterns, prefix="", namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), namespace, entry


def site_pages() -> list[tuple[str, str, URLPattern]]:
    """(route, name, pattern) of every page of the site but the admin, login and API."""
    return [(route, entry.name, entry) for route, ns, entry in _walk(get_resolver().url_patterns)
            if not route.startswith(_SKIPPED_PREFIXES)]


def page_methods(entry: URLPattern) -> list[str]:
    view = getattr(entry.callback, "view_class", None)
    allowed = getattr(view, "http_method_names", ["get", "post"])
    return [m.upper() for m in ("get", "post") if m in allowed and hasattr(view, m)]


def api_operations() -> list[tuple[str, str]]:
    schema = api.get_openapi_schema()
    return [(method.upper(), path) for path, ops in schema["paths"].items() for method in ops]


def page_rule(name: str, method: str) -> str | None:
    rule = PAGE_RULES.get(name)
    if rule is None:
        rule = next((r for p, r in PAGE_PREFIX_RULES.items() if name.startswith(p)), None)
    return rule.get(method) if isinstance(rule, dict) else rule


def api_rule(method: str, path: str) -> str | None:
    key = f"{method} {path}"
    if key in API_RULES:
        return API_RULES[key]
    return next((r for p, r in API_PREFIX_RULES.items() if path.startswith(p)), None)


def test_every_url_has_a_rule():
    pages = site_pages()
    assert len(pages) > 40 and any(name == "experiments" for _, name, _ in pages)
    missing = [f"{m} {route} ({name})" for route, name, entry in pages
               for m in page_methods(entry) if page_rule(name, m) is None]
    operations = api_operations()
    assert ("POST", "/api/experiments/{experiment_id}/activate") in operations
    missing += [f"{m} {p}" for m, p in operations if api_rule(m, p) is None]
    assert not missing, "give these a rule in PAGE_RULES / API_RULES: " + ", ".join(missing)


@pytest.fixture
def world(engine_beating):
    """One of everything the URLs name, and a user of each role; an engine beating, so
    that control requests are judged (not all refused with 503)."""
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    other = Experiment.objects.create(name="e21001")
    server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=9000)
    router = DataRouter.objects.create(name="data0", ip_address="127.0.0.1", port=46005,
                                       ecc_server=server) \
        if "ecc_server" in {f.name for f in DataRouter._meta.get_fields()} else \
        DataRouter.objects.create(name="data0", ip_address="127.0.0.1", port=46005)
    run = RunMetadata.objects.create(experiment=experiment, run_number=3, status="stopped")
    users = {V: make("vera", "viewer"), O: make("otto", "operator"), A: make("ada", "admin")}
    return {
        "experiment": experiment, "other": other, "server": server, "router": router,
        "run": run, "users": users,
        "command": Command.objects.create(kind=Command.Kind.TAIL_LOG, ecc_server=server),
        "event": Event.objects.create(level=Event.Level.ALARM, source="CoBo[0]",
                                      message="hot"),
        "observable": Observable.objects.create(experiment=experiment, name="beam",
                                                kind=Observable.Kind.choices[0][0]),
        "entry": LogEntry.objects.create(text="drafted", run=run, drafted=True),
        "tokens": {role: ApiToken.create(user, "t")[0] for role, user in users.items()},
    }


def page_kwargs(name: str, pattern: URLPattern, world: dict, role: str | None) -> dict:
    ids = {"eccserver": world["server"].pk, "datarouter": world["router"].pk,
           "unattributed": 999999, "event": world["event"].pk, "run": world["run"].pk,
           "observable": world["observable"].pk, "command": world["command"].pk,
           "log_entry": world["entry"].pk, "experiment": world["other"].pk,
           "token": world["tokens"][role or V].pk}
    kwargs = {}
    for key in pattern.pattern.converters:
        if key == "pk":
            # (the setup pages: a server of the kind in the URL)
            kwargs[key] = str(next((v for p, v in ids.items() if name.startswith(p)),
                                   world["server"].pk))
        elif key == "kind":
            kwargs[key] = "ecc-servers"
        else:
            kwargs[key] = "0"
    return kwargs


def _route(route: str, kwargs: dict) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route)


ORDER = {None: -1, V: 0, O: 1, A: 2}


def judge(response, role: str | None, needed: str, *, api_call: bool,
          json_page: bool = False) -> str:
    """"" if the answer is what ``role`` should get for something needing ``needed``."""
    code = response.status_code
    if code >= 500:
        return f"server error {code}"
    if role is None:
        if api_call or json_page:
            said = code == 401 and ({"detail", "error"} & set(response.json()))
            return "" if said else f"{code}, not 401 with a message"
        ok = code == 302 and "/login/" in response["Location"]
        return "" if ok else f"{code}, not a redirect to login"
    if ORDER[role] < ORDER[needed]:
        if code != 403:
            return f"{code}, not 403"
        text = response.content.decode()
        # Says why: the role needed (roles.refusal), or "may watch but not ..." (the
        # observables' own refusal in sheet_views.py).
        return "" if needed in text or "may watch but not" in text else \
            f"403 without saying why: {text[:200]}"
    if code in (401, 403) or (code == 302 and "/login/" in response.get("Location", "")):
        return f"{code}: refused although {role} suffices"
    return ""


@pytest.mark.parametrize("role", [None, V, O, A])
def test_every_page_enforces_its_role(world, role):
    client = Client()
    if role is not None:
        client.force_login(world["users"][role])
    wrong = []
    for route, name, entry in site_pages():
        for method in page_methods(entry):
            needed = page_rule(name, method)
            url = _route(route, page_kwargs(name, entry, world, role))
            response = client.get(url) if method == "GET" else client.post(url, {})
            if problem := judge(response, role, needed, api_call=False,
                                json_page=name in JSON_PAGES):
                wrong.append(f"{method} {url} ({name}, needs {needed}): {problem}")
    assert not wrong, "\n".join(wrong)


def _api_path(path: str, world: dict, role: str | None) -> str:
    ids = {"server_id": world["server"].pk, "router_id": world["router"].pk,
           "command_id": world["command"].pk, "number": world["run"].run_number,
           "record_id": 999999, "experiment_id": world["other"].pk,
           "token_id": world["tokens"][role or V].pk}
    return re.sub(r"{(\w+)}", lambda m: str(ids[m.group(1)]), path)


def _api_body(path: str) -> dict:
    last = [part for part in path.split("/") if part and not part.startswith("{")][-1]
    return API_BODIES.get(path, API_BODIES.get(last, {}))


@pytest.mark.parametrize("role", [None, V, O, A])
@pytest.mark.parametrize("auth", ["token", "session"])
def test_every_endpoint_enforces_its_role(world, role, auth):
    client = Client(enforce_csrf_checks=auth == "token")
    headers = {}
    if role is not None:
        if auth == "token":
            headers["HTTP_AUTHORIZATION"] = "Bearer " + ApiToken.issue(world["users"][role])
        else:
            client.force_login(world["users"][role])
    wrong = []
    for method, path in api_operations():
        url = _api_path(path, world, role)
        body = json.dumps(_api_body(path))
        response = client.generic(method, url, body, content_type="application/json",
                                  **headers)
        if problem := judge(response, role, api_rule(method, path), api_call=True):
            wrong.append(f"{method} {url} (needs {api_rule(method, path)}): {problem}")
    assert not wrong, "\n".join(wrong)


def test_a_refusal_names_the_role_on_the_page_and_in_the_api(world):
    client = Client()
    client.force_login(world["users"][V])
    page = client.get(f"/observables/{world['observable'].pk}/edit/")
    assert page.status_code == 403
    assert "vera may watch but not control the DAQ" in page.content.decode()
    assert "operator role (you are a viewer)" in page.content.decode()
    answer = client.post("/api/transition", {"target": "ready"},
                         content_type="application/json")
    assert answer.status_code == 403
    assert answer.json()["detail"].startswith("vera may watch but not control the DAQ")
