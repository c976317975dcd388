"""API tokens: create, list, last used, revoke; 401 for bad or revoked tokens on every
method; the /tokens/ page; admins manage anyone's."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User

from attpcdaq.daq.models import ApiToken, Experiment

pytestmark = pytest.mark.django_db


def user_with(name: str, group: str | None = None) -> User:
    user = User.objects.create_user(name, password="pw")
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def call(client, method, path, token=None, body=None, **extra):
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.generic(method, f"/api{path}", "" if body is None else json.dumps(body),
                          content_type="application/json", **extra)


def test_life_cycle(client):
    Experiment.objects.create(name="e1", is_active=True)
    vera = user_with("vera", "viewer")
    first = ApiToken.issue(vera, "bootstrap")
    made = call(client, "POST", "/tokens", first, {"name": "run CLI on daqpc"})
    assert made.status_code == 201, made.content
    body = made.json()
    token, token_id = body["token"], body["id"]
    assert body["user"] == "vera" and body["name"] == "run CLI on daqpc"
    assert body["last_used"] is None and body["active"] is True
    assert len(token) >= 40 and not ApiToken.objects.filter(digest=token).exists()
    listed = call(client, "GET", "/tokens", token).json()
    assert {t["name"] for t in listed} == {"bootstrap", "run CLI on daqpc"}
    assert all("token" not in t and "digest" not in t for t in listed)
    row = next(t for t in listed if t["id"] == token_id)
    assert row["last_used"] is not None  # this very request used it
    used = ApiToken.objects.get(pk=token_id).last_used
    assert call(client, "GET", "/status", token).status_code == 200
    assert ApiToken.objects.get(pk=token_id).last_used > used
    revoked = call(client, "DELETE", f"/tokens/{token_id}", first)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    answer = call(client, "GET", "/status", token)
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    still = call(client, "GET", "/tokens", first).json()
    assert next(t for t in still if t["id"] == token_id)["revoked"] is not None
    # Revoking again changes nothing.
    again = call(client, "DELETE", f"/tokens/{token_id}", first)
    assert again.status_code == 200 and again.json()["revoked"] == revoked.json()["revoked"]


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer ", "Bearer", "Basic dXNlcjpwdw==",
                                    "nonsense", "revoked"])
@pytest.mark.parametrize("method, path", [
    ("GET", "/status"), ("POST", "/transition"), ("PATCH", "/runs/1"),
    ("DELETE", "/tokens/1"), ("POST", "/tokens"), ("PATCH", "/experiments/1"),
])
def test_bad_or_revoked_token_is_401_on_every_method(client, header, method, path):
    if header == "revoked":
        user = user_with("otto", "admin")
        token = ApiToken.issue(user, "old")
        ApiToken.objects.get(user=user).revoke()
        header = f"Bearer {token}"
    # With a logged-in session too: the header alone decides, no CSRF 403.
    client.force_login(user_with("someone"))
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    for c in (client, strict):
        answer = c.generic(method, f"/api{path}", json.dumps({"target": "ready"}),
                           content_type="application/json", HTTP_AUTHORIZATION=header)
        assert answer.status_code == 401, (header, answer.content)
        assert answer["Content-Type"].startswith("application/json")
        assert "token" in answer.json()["detail"] or "Bearer" in answer.json()["detail"]


def test_no_token_no_session_is_401_not_csrf(client):
    from django.test import Client

    for method in ("GET", "POST", "PATCH", "DELETE"):
        answer = Client(enforce_csrf_checks=True).generic(
            method, "/api/tokens/1" if method in ("DELETE",) else "/api/tokens", "{}",
            content_type="application/json")
        assert answer.status_code in (401, 405), (method, answer.content)
        if answer.status_code == 401:
            assert "detail" in answer.json()


def test_session_post_without_csrf_still_refused():
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user_with("vera"))
    answer = strict.post("/api/tokens", json.dumps({"name": "x"}),
                         content_type="application/json")
    assert answer.status_code == 403 and not ApiToken.objects.exists()


def test_users_manage_only_their_own_admins_anyones(client):
    vera, otto, ada = user_with("vera", "viewer"), user_with("otto", "operator"), \
        user_with("ada", "admin")
    vt, ot, at = (ApiToken.issue(u, "own") for u in (vera, otto, ada))
    otto_row = ApiToken.objects.get(user=otto)
    # Someone else's token is not found for a non-admin (nor listed).
    assert call(client, "DELETE", f"/tokens/{otto_row.pk}", vt).status_code == 404
    assert [t["user"] for t in call(client, "GET", "/tokens", vt).json()] == ["vera"]
    assert call(client, "GET", "/tokens?all=true", vt).status_code == 403
    refused = call(client, "POST", "/tokens", vt, {"name": "x", "user": "otto"})
    assert refused.status_code == 403 and "admin role" in refused.json()["detail"]
    assert ApiToken.objects.get(pk=otto_row.pk).revoked is None
    # An admin lists, makes and revokes anyone's.
    assert {t["user"] for t in call(client, "GET", "/tokens?all=true", at).json()} == \
        {"vera", "otto", "ada"}
    made = call(client, "POST", "/tokens", at, {"name": "for otto", "user": "otto"})
    assert made.status_code == 201 and made.json()["user"] == "otto"
    assert call(client, "GET", "/status", made.json()["token"]).status_code == 200
    assert call(client, "DELETE", f"/tokens/{otto_row.pk}", at).status_code == 200
    assert call(client, "GET", "/status", ot).status_code == 401
    assert call(client, "POST", "/tokens", at, {"name": "x", "user": "nobody"}).status_code \
        == 404


@pytest.mark.parametrize("name, said", [
    ("", "Give the token a name"), ("x" * 101, "at most 100"),
    ("a\u202eb", "U+202E"), ("line\nbreak", "U+000A"), (7, "must be text"),
])
def test_bad_names(client, name, said):
    token = ApiToken.issue(user_with("vera"), "own")
    answer = call(client, "POST", "/tokens", token, {"name": name})
    assert answer.status_code == 400 and said in answer.json()["detail"]
    assert ApiToken.objects.count() == 1


def test_the_page(client):
    vera = user_with("vera", "viewer")
    client.force_login(vera)
    assert client.get("/tokens/").status_code == 200
    made = client.post("/tokens/", {"name": "laptop <script>"})
    assert made.status_code == 201 and made["Cache-Control"] == "no-store"
    text = made.content.decode()
    assert "laptop &lt;script&gt;" in text and 'id="new-token-value"' in text
    row = ApiToken.objects.get(user=vera)
    token = text.split('id="new-token-value">')[1].split("<")[0]
    assert ApiToken.hash(token) == row.digest
    # Shown once: the list page never shows it again.
    listed = client.get("/tokens/").content.decode()
    assert token not in listed and "never" in listed and "laptop &lt;script&gt;" in listed
    refused = client.post("/tokens/", {"name": "bad\u202ename"})
    assert refused.status_code == 400 and "U+202E" in refused.content.decode()
    other = ApiToken.create(user_with("otto"), "his")[0]
    assert client.post(f"/tokens/{other.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=other.pk).revoked is None
    done = client.post(f"/tokens/{row.pk}/revoke/", follow=True)
    assert done.status_code == 200 and "revoked" in done.content.decode()
    assert ApiToken.user_for(token) is None


def test_the_page_for_an_admin(client):
    client.force_login(user_with("ada", "admin"))
    otto = user_with("otto")
    mine = client.post("/tokens/", {"name": "for otto", "user": "otto"})
    assert mine.status_code == 201 and ApiToken.objects.get().user == otto
    assert "otto" in client.get("/tokens/").content.decode()
    assert client.post(f"/tokens/{ApiToken.objects.get().pk}/revoke/").status_code == 302
    assert ApiToken.objects.get().revoked is not None
