"""Pages of a run's metadata: the Start dialog's post and prefill, the run page's edit,
and the run sheet's downloads (CSV, JSON, the logbook as CSV)."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.http import content_disposition_header
from django.views import View

from . import exports, forms, runmeta, services
from .models import Command, ECCServer, Experiment, RunMetadata
from .views import ActionView, DaqAccessMixin, find, not_found, toast


def refusal(request, error: services.ControlError):
    """A toast of why, and for refused run details each field's message in the
    ``X-Field-Errors`` header (JSON, ASCII), for the dialog to put beside its field."""
    response = toast(request, f"Refused: {error}" if isinstance(error, runmeta.MetadataError)
                     else str(error), error.status)
    if isinstance(error, runmeta.MetadataError):
        response["X-Field-Errors"] = json.dumps(error.errors, ensure_ascii=True)
    return response


class StartView(ActionView):
    """The Start dialog's submit: a run started with its details (title, class, comment,
    limits, auto restart). ``confirm_drift`` with ``repeat`` is "Start anyway" after a
    Start refused for configuration drift: the refused Start's details again."""

    def perform(self, data: dict) -> str:
        post = self.request.POST
        services.require_engine()
        forms.SYSTEM_ACTION_BY_KEY["start"].check(
            ECCServer.objects.filter(enabled=True, excluded=False)
            .values_list("state", flat=True))
        if post.get("repeat"):
            refused = Command.objects.filter(ecc_server=None, target=ECCServer.RUNNING,
                                             status=Command.Status.FAILED).first()
            options = refused.options if refused is not None and refused.options else None
        else:
            options = runmeta.form_start_options(post)
        command = services.request_transition(self.request.user, "running",
                                              confirm_drift=bool(post.get("confirm_drift")),
                                              options=options)
        title = (command.options or {}).get("title")
        return f"Queued: {command.describe()}" + (f" “{title}”" if title else "")

    def refused(self, error: services.ControlError):
        return refusal(self.request, error)


class StartPrefillView(DaqAccessMixin, View):
    """What the Start dialog offers now (the active experiment's previous run), JSON."""

    def get(self, request):
        return JsonResponse(runmeta.prefill(Experiment.active()))


class RunMetadataEditView(ActionView):
    """The run page's form: title, class, comment and measurements, all or nothing."""

    success_status = 200

    def prepare(self) -> None:
        self.object = find(RunMetadata.objects.select_related("experiment"),
                           self.kwargs["pk"])

    def perform(self, data: dict) -> str:
        post = self.request.POST
        fields = {k: post.get(k, "") for k in runmeta.EDITABLE if k in post}
        measurements = {o.name: post.get(f"m-{o.pk}", "")
                        for o in exports.observables_of(self.object.experiment)
                        if f"m-{o.pk}" in post}
        if measurements:
            fields[runmeta.MEASUREMENTS] = measurements
        edits = runmeta.update_run(self.request.user, self.object, fields)
        if not edits:
            return "Nothing changed."
        return "Saved: " + ", ".join(runmeta.edit_label(e.field) for e in edits) + "."

    def answer(self, result):
        if self.request.htmx:
            response = toast(self.request, result, 200)
            response["HX-Refresh"] = "true"  # the page shows the new values and edits
            return response
        return redirect("daq:run_detail", self.object.pk)

    def refused(self, error: services.ControlError):
        return refusal(self.request, error)


class ExportView(DaqAccessMixin, View):
    """A download of the run sheet of the active experiment, or of ``?experiment=``."""

    suffix = ""

    def get(self, request):
        name = request.GET.get("experiment", "")
        experiment = (Experiment.objects.filter(name=name).first() if name
                      else Experiment.active() or Experiment.objects.first())
        if experiment is None:
            return not_found(request, f"There is no experiment named {name[:100]!r}."
                             if name else "There is no experiment yet.")
        response = self.content(experiment)
        response["Content-Disposition"] = content_disposition_header(
            True, f"{experiment.name}-{self.suffix}")
        return response

    def content(self, experiment: Experiment) -> HttpResponse:
        raise NotImplementedError


class SheetCSVView(ExportView):
    """The run sheet as CSV (UTF-8 with BOM: see daq/exports.py)."""

    suffix = "runs.csv"

    def content(self, experiment):
        return HttpResponse(exports.sheet_csv(experiment).encode("utf-8"),
                            content_type="text/csv; charset=utf-8")


class SheetJSONView(ExportView):
    """The run sheet as JSON, with the observables and the logbook."""

    suffix = "runs.json"

    def content(self, experiment):
        return HttpResponse(json.dumps(exports.sheet_json(experiment), cls=DjangoJSONEncoder,
                                       ensure_ascii=False, indent=1).encode("utf-8"),
                            content_type="application/json; charset=utf-8")


class LogbookCSVView(ExportView):
    """The experiment's logbook as CSV."""

    suffix = "logbook.csv"

    def content(self, experiment):
        return HttpResponse(exports.logbook_csv(experiment).encode("utf-8"),
                            content_type="text/csv; charset=utf-8")
