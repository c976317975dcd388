"""Roles (daq/roles.py): the groups of migration 0009, the checks and the decorators."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.http import HttpResponse
from django.test import RequestFactory

from attpcdaq.daq import roles

pytestmark = pytest.mark.django_db


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
    table = {plain: "viewer", viewer: "viewer", staff: "viewer", operator: "operator",
             direct: "operator", admin: "admin", superuser: "admin"}
    for user, expected in table.items():
        assert roles.role_of(user) == expected, user
        assert roles.is_viewer(user)
        assert roles.is_operator(user) == (expected != "viewer"), user
        assert roles.is_admin(user) == (expected == "admin"), user
    from django.contrib.auth.models import AnonymousUser

    assert roles.role_of(AnonymousUser()) is None
    admin.is_active = False
    assert not roles.is_viewer(admin) and not roles.is_admin(admin)


def test_decorators_redirect_anonymous_and_refuse_with_a_page():
    from django.contrib.auth.models import AnonymousUser

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
