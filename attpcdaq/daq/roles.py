"""The three roles of the run control, and the checks every page and endpoint uses.

* **viewer**: any active user who is logged in (or holds an API token). Sees every
  page, reads the logs, writes free logbook entries. The group "viewer" exists so
  that an admin can say so explicitly; it grants nothing beyond logging in.
* **operator**: controls the DAQ (transitions, start/stop, exclusions, limits), fills
  the run sheet and confirms logbook drafts. This is the permission
  ``daq.control_daq``, granted directly or through the group "operator".
* **admin**: the setup (ECC servers, routers, sources), experiments, users and
  everyone's API tokens. An admin is a superuser or a member of the group "admin".
  ``is_staff`` alone is *not* admin: it only opens the Django admin site, whose own
  model permissions still apply. Admins are operators too.

Views use :func:`operator_required` / :func:`admin_required` (function views) or
:class:`RoleRequiredMixin` (class views): anonymous users are sent to the login
page, logged-in users without the role get a 403 page (an htmx toast for htmx
requests) that says which role is missing. The API uses :func:`require` through
``api/views.py``.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render

CONTROL_PERMISSION = "daq.control_daq"

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
#: The roles from least to most power.
ROLES = (VIEWER, OPERATOR, ADMIN)

#: What each role may do, as said in refusals.
_WHAT = {
    VIEWER: "may not see the DAQ",
    OPERATOR: "may watch but not control the DAQ",
    ADMIN: "may not change the setup, experiments, users or others' tokens",
}


def _signed_in(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def _in_group(user, name: str) -> bool:
    return user.groups.filter(name=name).exists()


def is_viewer(user) -> bool:
    """Logged in and active: may see everything."""
    return _signed_in(user)


def is_admin(user) -> bool:
    """A superuser or a member of the group "admin"."""
    return _signed_in(user) and (user.is_superuser or _in_group(user, ADMIN))


def is_operator(user) -> bool:
    """Holds ``daq.control_daq`` (directly or through a group), or is an admin."""
    return _signed_in(user) and (user.has_perm(CONTROL_PERMISSION) or is_admin(user))


CHECKS = {VIEWER: is_viewer, OPERATOR: is_operator, ADMIN: is_admin}


def has_role(user, role: str) -> bool:
    """Whether ``user`` has ``role`` (one of :data:`ROLES`)."""
    return CHECKS[role](user)


def role_of(user) -> str | None:
    """The highest role of ``user``, or None for an anonymous or inactive one."""
    for role in reversed(ROLES):
        if has_role(user, role):
            return role
    return None


def refusal(user, role: str) -> str:
    """The message that says why ``user`` may not do what needs ``role``."""
    if not _signed_in(user):
        return "Log in first."
    return (f"{user.get_username()} {_WHAT[role]}: this needs the {role} role "
            f"(you are {_article(role_of(user))}).")


def _article(role: str | None) -> str:
    if role is None:
        return "no role"
    return f"{'an' if role[0] in 'aeiou' else 'a'} {role}"


def forbidden(request, role: str):
    """The 403 answer for a logged-in user without ``role``: a toast for htmx, else a page."""
    message = refusal(request.user, role)
    if getattr(request, "htmx", False):
        from .views import toast

        return toast(request, message, 403)
    return render(request, "daq/forbidden.html", {"message": message, "role": role},
                  status=403)


def role_required(role: str):
    """Decorator of a function view: login redirect if anonymous, 403 without ``role``."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not _signed_in(request.user):
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, role):
                return forbidden(request, role)
            return view(request, *args, **kwargs)

        wrapper.required_role = role
        return wrapper

    return decorator


viewer_required = role_required(VIEWER)
operator_required = role_required(OPERATOR)
admin_required = role_required(ADMIN)


class RoleRequiredMixin:
    """Class-view counterpart of :func:`role_required`: set ``required_role``."""

    required_role: str = VIEWER

    def dispatch(self, request, *args, **kwargs):
        if not _signed_in(request.user):
            return redirect_to_login(request.get_full_path())
        if not has_role(request.user, self.required_role):
            return forbidden(request, self.required_role)
        return super().dispatch(request, *args, **kwargs)
