"""Pages of the shift: the logbook (entries, search, the engine's drafts to edit and
confirm) and the timed run's limits posted from the status page's run panel."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from . import limits, logbook, services
from .models import Experiment, LogEntry, RunMetadata
from .views import ActionView, DaqAccessMixin, NotFound, find, not_found


class LogbookView(DaqAccessMixin, View):
    """``/logbook/``: the entries (drafts waiting first), searchable and paged; a new one."""

    def get(self, request, *, error: str = "", status: int = 200, typed: str = "",
            typed_run: str = "", typed_for: int | None = None, typed_text: str = ""):
        query = request.GET.get("q", "")[:logbook.MAX_QUERY]
        # The active experiment's entries (all of them while none is active).
        page = Paginator(logbook.entries(query, Experiment.active()), logbook.PER_PAGE).get_page(
            request.GET.get("page"))
        editing = request.GET.get("edit", "")
        for entry in page:
            entry.is_draft = logbook.is_draft(entry)
            entry.editable = logbook.can_edit(request.user, entry)
            entry.editing = entry.editable and (entry.is_draft or str(entry.pk) == editing
                                                or entry.pk == typed_for)
            # A refused edit comes back as it was typed, to be fixed.
            entry.shown_text = typed_text if entry.pk == typed_for else entry.text
        return render(request, "daq/logbook.html", {
            "page": page, "query": query, "error": error, "typed": typed,
            "typed_run": typed_run, "is_operator": logbook.is_operator(request.user),
            "page_numbers": page.paginator.get_elided_page_range(page.number)}, status=status)

    def post(self, request):
        text, number = request.POST.get("text", ""), request.POST.get("run", "")
        try:
            entry = logbook.add_entry(request.user, text, logbook.run_of(number))
        except services.ControlError as exc:
            return self.get(request, error=str(exc), status=exc.status, typed=text,
                            typed_run=number)
        return redirect(f"{reverse('daq:logbook')}#entry-{entry.pk}", permanent=False)


class LogEntryActionView(DaqAccessMixin, View):
    """Edit (``confirm`` False) or confirm a logbook entry; back to the logbook."""

    http_method_names = ["post"]
    confirm = False

    def post(self, request, pk: str):
        try:
            entry = find(LogEntry.objects.all(), pk)
        except NotFound as exc:
            return not_found(request, str(exc))
        text = request.POST.get("text")
        try:
            if self.confirm:
                logbook.confirm_entry(request.user, entry, text)
            else:
                logbook.edit_entry(request.user, entry, text if text is not None else "")
        except services.ControlError as exc:
            return LogbookView.as_view()(_as_get(request), error=str(exc), status=exc.status,
                                         typed_for=entry.pk, typed_text=text or "")
        return redirect(f"{reverse('daq:logbook')}#entry-{entry.pk}")


def _as_get(request):
    """The same request, read as the logbook's GET (its error shown on the page)."""
    request.method = "GET"
    return request


class RunLimitsView(ActionView):
    """The run panel's limits form: change or remove the open run's limits (a toast)."""

    success_status = 200

    def prepare(self) -> None:
        self.object = find(RunMetadata.objects.all(), self.kwargs["pk"])

    def cleaned_data(self) -> dict:
        post = self.request.POST
        changes = {"limit_seconds": limits.parse_duration(post.get("limit_seconds", "")),
                   "limit_bytes": limits.parse_size(post.get("limit_bytes", "")),
                   "limit_events": limits.parse_count(post.get("limit_events", "")),
                   "auto_restart": post.get("auto_restart") in ("on", "true", "1")}
        return changes

    def perform(self, data: dict) -> str:
        said = limits.set_limits(self.request.user, self.object, data)
        number = self.object.run_number
        return (f"Run {number}: {'; '.join(said)}." if said
                else f"Run {number}: the limits are as they were.")
