"""Pages of experiments (``/experiments/``) and API tokens (``/tokens/``).

Everyone logged in sees the experiments; admins create, rename and switch them
(daq/experiments.py says when a switch is refused). Everyone manages their own API
tokens; admins see and manage everyone's (daq/tokens.py). A refusal comes back on the
page, what was typed kept, with the status that says why (400, 403, 404, 409).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from . import experiments, roles, tokens
from .models import Experiment
from .services import ControlError
from .views import DaqAccessMixin, NotFound, find


class ExperimentsView(DaqAccessMixin, View):
    """``/experiments/``: the list (everyone); POST creates one (admins)."""

    def get(self, request, *, error: str = "", status: int = 200, typed: str = "",
            typed_for: int | None = None, typed_name: str = ""):
        rows = list(Experiment.objects.all())
        for row in rows:
            row.shown_name = typed_name if row.pk == typed_for else row.name
            row.run_count = row.runs.count()
        return render(request, "daq/experiments.html", {
            "experiments": rows, "active": next((e for e in rows if e.is_active), None),
            "switch_refused": experiments.switch_refusal(), "error": error,
            "error_for": typed_for, "typed": typed, "is_admin": roles.is_admin(request.user),
            "name_max": 100}, status=status)

    def post(self, request):
        if not roles.is_admin(request.user):
            return roles.forbidden(request, roles.ADMIN)
        name = request.POST.get("name", "")
        try:
            experiment = experiments.create(name, activate=bool(request.POST.get("activate")))
        except ControlError as exc:
            return self.get(request, error=str(exc), status=exc.status, typed=name)
        messages.success(request, f"Experiment {experiment.name!r} created"
                         + (" and made active." if experiment.is_active else "."))
        return redirect(f"{reverse('daq:experiments')}#experiment-{experiment.pk}")


class ExperimentActionView(DaqAccessMixin, View):
    """Rename (``activate`` False) or switch to an experiment (admins); back to the list."""

    http_method_names = ["post"]
    required_role = roles.ADMIN
    activate = False

    def post(self, request, pk: str):
        try:
            experiment = find(Experiment.objects.all(), pk)
        except NotFound as exc:
            return ExperimentsView.as_view()(_as_get(request), error=str(exc), status=404)
        name = request.POST.get("name", "")
        try:
            if self.activate:
                experiments.switch_to(experiment)
                messages.success(request, f"{experiment.name} is now the active experiment.")
            else:
                old = experiment.name
                experiment = experiments.rename(experiment, name)
                messages.success(request, f"Experiment {old!r} renamed {experiment.name!r}.")
        except ControlError as exc:
            return ExperimentsView.as_view()(_as_get(request), error=str(exc),
                                             status=exc.status, typed_for=experiment.pk,
                                             typed_name=name if not self.activate
                                             else experiment.name)
        return redirect(f"{reverse('daq:experiments')}#experiment-{experiment.pk}")


class TokensView(DaqAccessMixin, View):
    """``/tokens/``: one's API tokens (an admin's: everyone's); POST makes one."""

    def get(self, request, *, error: str = "", status: int = 200, typed: str = "",
            typed_user: str = "", new_token: str = "", new_row=None):
        admin = roles.is_admin(request.user)
        return render(request, "daq/tokens.html", {
            "tokens": list(tokens.visible(request.user, everyone=admin)), "is_admin": admin,
            "users": (list(get_user_model().objects.filter(is_active=True)
                           .order_by("username").values_list("username", flat=True))
                      if admin else []),
            "error": error, "typed": typed, "typed_user": typed_user or
            request.user.get_username(), "new_token": new_token, "new_row": new_row,
            "name_max": tokens.NAME_MAX}, status=status)

    def post(self, request):
        name, username = request.POST.get("name", ""), request.POST.get("user", "")
        try:
            row, token = tokens.create(request.user, name, username)
        except ControlError as exc:
            return self.get(request, error=str(exc), status=exc.status, typed=name,
                            typed_user=username)
        # Shown in this answer only: never stored, never in a redirect or a message.
        response = self.get(request, new_token=token, new_row=row, status=201)
        response["Cache-Control"] = "no-store"
        return response


class TokenRevokeView(DaqAccessMixin, View):
    """Revoke a token (one's own; an admin's: anyone's); back to the list."""

    http_method_names = ["post"]

    def post(self, request, pk: str):
        try:
            row = tokens.revoke(request.user, pk)
        except ControlError as exc:
            return TokensView.as_view()(_as_get(request), error=str(exc), status=exc.status)
        messages.success(request, f"Token {row.name or row.pk!r} of {row.user.get_username()} "
                         "revoked: it authenticates nobody from now.")
        return redirect(reverse("daq:tokens"))


def _as_get(request):
    """The same request, read as the list page's GET (its error shown on the page)."""
    request.method = "GET"
    return request
