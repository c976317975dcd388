"""The Start dialog and the run page's metadata panel, each with what it shows."""

from __future__ import annotations

from django import template

from attpcdaq.daq import exports, roles, runmeta
from attpcdaq.daq.models import Experiment, RunClass

register = template.Library()


@register.inclusion_tag("daq/inc/start_dialog.html")
def start_dialog():
    """The Start dialog, prefilled from the active experiment's previous run."""
    return {"prefill": runmeta.prefill(Experiment.active()),
            "classes": list(RunClass.objects.values_list("name", flat=True)),
            "max_title": runmeta.MAX_TITLE, "max_comment": runmeta.MAX_COMMENT}


@register.inclusion_tag("daq/inc/run_metadata.html", takes_context=True)
def run_metadata(context, run):
    """A run's title, class, comment, times and measurements, its form for operators,
    and who changed what."""
    from attpcdaq.daq.observables import show_value

    user = context["request"].user
    values = {m.observable_id: m.value for m in run.measurements.all()}
    observables = [(o, show_value(o, values.get(o.pk)))
                   for o in exports.observables_of(run.experiment)]
    edits = [(e, runmeta.edit_label(e.field)) for e in run.edits.select_related("user")]
    return {"run": run, "request": context["request"],
            "can_edit": roles.is_operator(user),
            "classes": list(RunClass.objects.values_list("name", flat=True)),
            "observables": observables, "edits": edits,
            "live_time": runmeta.live_time(run), "duration": runmeta.duration(run),
            "max_title": runmeta.MAX_TITLE, "max_comment": runmeta.MAX_COMMENT}
