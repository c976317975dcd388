"""The setup pages (admins only): ECC servers, data routers and data sources, the easy
setup, and the export and import of the whole setup as JSON.

The rules and the replacing are :mod:`attpcdaq.daq.setup`'s; these views only show
them. A refusal (a run open, a server not Idle) is said on the page, with status 409,
and nothing changes.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from . import setup
from .models import DataRouter, DataSource, ECCServer
from .roles import ADMIN, RoleRequiredMixin
from .setup_forms import (
    DataRouterForm,
    DataSourceForm,
    EasySetupForm,
    ECCServerForm,
    ImportForm,
)
from .views import NotFound, find, not_found

#: The kinds of the URLs: model, form, and what a page calls one.
KINDS = {
    "ecc-servers": (ECCServer, ECCServerForm, "ECC server"),
    "data-routers": (DataRouter, DataRouterForm, "data router"),
    "data-sources": (DataSource, DataSourceForm, "data source"),
}


class AdminMixin(RoleRequiredMixin):
    """Admins only; a missing object is a 404 page saying what was missing."""

    required_role = ADMIN

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except NotFound as exc:
            return not_found(request, str(exc))


def _kind(kind: str):
    if kind not in KINDS:
        raise NotFound(f"There is no kind of hardware called {kind[:40]!r}.")
    return KINDS[kind]


def setup_page(request, *, import_form=None, refusal="", status=200):
    servers = ECCServer.objects.prefetch_related("data_sources__data_router").order_by("name")
    routers = DataRouter.objects.prefetch_related("data_sources__ecc_server").order_by("name")
    sources = DataSource.objects.select_related("ecc_server", "data_router").order_by(
        "ecc_server__name", "name")
    return render(request, "daq/setup/index.html", {
        "servers": servers, "routers": routers, "sources": sources,
        "import_form": import_form or ImportForm(), "refusal": refusal,
        "blocked": setup.change_refusal()}, status=status)


class SetupView(AdminMixin, View):
    def get(self, request):
        return setup_page(request)


class SetupEditView(AdminMixin, View):
    """Add (no pk) or edit one server, router or source."""

    def _object(self, kind, pk):
        model, form_class, what = _kind(kind)
        obj = find(model.objects.all(), pk) if pk is not None else None
        return model, form_class, what, obj

    def _render(self, request, kind, form, what, obj, status=200):
        return render(request, "daq/setup/edit.html", {
            "form": form, "kind": kind, "what": what, "object": obj}, status=status)

    def get(self, request, kind, pk=None):
        model, form_class, what, obj = self._object(kind, pk)
        initial = {}
        if model is DataSource and obj is None:
            initial = {key: request.GET[key] for key in ("ecc_server",)
                       if request.GET.get(key, "").isdigit()}
        return self._render(request, kind, form_class(instance=obj, initial=initial), what, obj)

    def post(self, request, kind, pk=None):
        _, form_class, what, obj = self._object(kind, pk)
        with transaction.atomic():
            form = form_class(request.POST, instance=obj)
            if not form.is_valid():
                return self._render(request, kind, form, what, obj, status=400)
            saved = form.save()
        messages.success(request, f"{what[0].upper()}{what[1:]} {saved.name} "
                         f"{'saved' if obj else 'added'}.")
        return redirect("daq:setup")


class SetupRemoveView(AdminMixin, View):
    def post(self, request, kind, pk):
        model, _, what = _kind(kind)
        with transaction.atomic():
            obj = find(model.objects.all(), pk)
            refusal = setup.removal_refusal(obj)
            if refusal:
                return setup_page(request, status=409, refusal=(
                    f"{obj.name} cannot be removed: {refusal}."))
            name = obj.name
            obj.delete()
        messages.success(request, f"{what[0].upper()}{what[1:]} {name} removed.")
        return redirect("daq:setup")


class EasySetupView(AdminMixin, View):
    """GET: the form; POST ``action=preview``: what it will create; ``action=apply``: do it."""

    def _render(self, request, form, status=200, **context):
        return render(request, "daq/setup/easy.html", {
            "form": form, "blocked": setup.change_refusal(), **context}, status=status)

    def get(self, request):
        return self._render(request, EasySetupForm())

    def post(self, request):
        form = EasySetupForm(request.POST)
        if not form.is_valid():
            return self._render(request, form, status=400)
        document = form.document
        if request.POST.get("action") != "apply":
            return self._render(request, form, document=document,
                                changes=setup.compare(document))
        try:
            summary = setup.apply_setup(document)
        except setup.SetupRefused as exc:
            return self._render(request, form, status=409, document=document,
                                changes=setup.compare(document), refusal=str(exc))
        messages.success(request, f"Setup replaced: {summary.text()}.")
        return redirect("daq:setup")


class SetupExportView(AdminMixin, View):
    def get(self, request):
        text = setup.dumps(setup.export_setup())
        response = HttpResponse(text, content_type="application/json; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="attpcdaq-setup-{stamp}.json"'
        return response


class SetupImportView(AdminMixin, View):
    def get(self, request):
        return redirect("daq:setup")

    def post(self, request):
        form = ImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return setup_page(request, import_form=form, status=400)
        try:
            summary = setup.apply_setup(form.document)
        except setup.SetupRefused as exc:
            return setup_page(request, import_form=form, status=409,
                              refusal=f"The setup was not imported: {exc}.")
        messages.success(request, f"Setup imported: {summary.text()}.")
        return redirect(reverse("daq:setup"))
