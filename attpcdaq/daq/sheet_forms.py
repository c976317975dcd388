"""Forms of the run sheet: an observable, the runs page's filters."""

from __future__ import annotations

from django import forms

from .models import Experiment, Observable, RunClass
from .observables import hostile_text

#: At most this many choices for a choice observable, each at most CHOICE_CHARS long.
MAX_CHOICES = 200
CHOICE_CHARS = 200
#: Names the run sheet already uses for its own columns (compared ignoring case).
RESERVED_NAMES = frozenset({"run", "number", "title", "class", "run class", "comment",
                            "status", "start", "stop", "duration", "live time", "events",
                            "files", "size", "data", "bytes", "filed", "problems"})
NUMERIC = (Observable.Kind.INTEGER, Observable.Kind.FLOAT)


def _plain(value: str, *, multiline: bool = False) -> str:
    problem = hostile_text(value, multiline=multiline)
    if problem:
        raise forms.ValidationError(f"It {problem}.")
    return value.strip()


class ObservableForm(forms.ModelForm):
    """An observable of ``experiment``: checked for the run sheet's use of it."""

    choices = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For a choice: the allowed values, one per line.")

    class Meta:
        model = Observable
        fields = ["name", "kind", "units", "help_text", "required", "choices", "minimum",
                  "maximum"]
        labels = {"kind": "Type", "help_text": "Help text", "minimum": "Minimum",
                  "maximum": "Maximum"}
        help_texts = {"minimum": "For numbers; empty for none.",
                      "maximum": "For numbers; empty for none."}

    def __init__(self, *args, experiment: Experiment, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.experiment = experiment
        if self.instance.pk and not self.is_bound:
            self.initial["choices"] = "\n".join(str(c) for c in self.instance.choices or [])
        for bound in self.fields.values():
            widget = bound.widget
            css = ("form-check-input" if isinstance(widget, forms.CheckboxInput) else
                   "form-select" if isinstance(widget, forms.Select) else "form-control")
            widget.attrs["class"] = f"{css} form-control-sm" if css == "form-control" \
                else css

    def clean_name(self) -> str:
        name = _plain(self.cleaned_data["name"])
        if not name:
            raise forms.ValidationError("The name is empty.")
        if name.casefold() in RESERVED_NAMES:
            raise forms.ValidationError(f"{name!r} is a column of the run sheet already: "
                                        "choose another name.")
        others = self.experiment.observables.exclude(pk=self.instance.pk)
        if any(o.name.casefold() == name.casefold() for o in others):
            raise forms.ValidationError(f"{self.experiment.name} has an observable named "
                                        f"{name!r} already.")
        return name

    def clean_units(self) -> str:
        return _plain(self.cleaned_data["units"])

    def clean_help_text(self) -> str:
        return _plain(self.cleaned_data["help_text"])

    def clean_choices(self) -> list[str]:
        text = self.cleaned_data.get("choices") or ""
        if len(text) > MAX_CHOICES * (CHOICE_CHARS + 2):
            raise forms.ValidationError(f"Too long: at most {MAX_CHOICES} choices of "
                                        f"{CHOICE_CHARS} characters.")
        choices = []
        for line in text.splitlines():
            choice = _plain(line)
            if not choice:
                continue
            if len(choice) > CHOICE_CHARS:
                raise forms.ValidationError(f"A choice is {len(choice):,} characters long: "
                                            f"at most {CHOICE_CHARS}.")
            if choice in choices:
                raise forms.ValidationError(f"{choice!r} is listed twice.")
            choices.append(choice)
        if len(choices) > MAX_CHOICES:
            raise forms.ValidationError(f"{len(choices)} choices: at most {MAX_CHOICES}.")
        return choices

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == Observable.Kind.CHOICE and "choices" in data and not data["choices"]:
            self.add_error("choices", "A choice needs at least one value to choose from.")
        elif kind and kind != Observable.Kind.CHOICE and data.get("choices"):
            self.add_error("choices", "Only a choice has a list of values: leave it empty.")
        for bound in ("minimum", "maximum"):
            if kind and kind not in NUMERIC and data.get(bound) is not None:
                self.add_error(bound, "Only an integer or a number has a minimum or maximum: "
                               "leave it empty.")
        low, high = data.get("minimum"), data.get("maximum")
        if low is not None and high is not None and low > high:
            self.add_error("maximum", f"The maximum is below the minimum ({low:g}).")
        if self.instance.pk and kind and kind != self.instance.kind:
            count = self.instance.measurements.count()
            if count:
                self.add_error("kind", f"{count} run(s) have a value of it: its type cannot "
                               "change (add another observable instead).")
        return data

    def save(self, commit: bool = True) -> Observable:
        observable = super().save(commit=False)
        observable.experiment = self.experiment
        observable.choices = self.cleaned_data.get("choices") or []
        if observable.pk is None:
            last = self.experiment.observables.order_by("-order").first()
            observable.order = last.order + 1 if last else 0
        if commit:
            observable.save()
        return observable


class RunFilterForm(forms.Form):
    """The runs page's filters: class, start date range, text in title or comment."""

    run_class = forms.ChoiceField(required=False, label="Class")
    start_from = forms.DateField(required=False, label="From",
                                 widget=forms.DateInput(attrs={"type": "date"}))
    start_to = forms.DateField(required=False, label="To",
                               widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=200, label="Text",
                        widget=forms.TextInput(attrs={"placeholder": "title or comment",
                                                      "type": "search"}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["run_class"].choices = [("", "Any class")] + [
            (c.name, c.name) for c in RunClass.objects.all()]
        wrong = self.errors if self.is_bound else {}
        for name, bound in self.fields.items():
            css = "form-select form-select-sm" if name == "run_class" else \
                "form-control form-control-sm"
            bound.widget.attrs["class"] = css + (" is-invalid" if name in wrong else "")

    def clean_q(self) -> str:
        return _plain(self.cleaned_data.get("q") or "")

    def clean(self):
        data = super().clean()
        low, high = data.get("start_from"), data.get("start_to")
        if low and high and low > high:
            self.add_error("start_to", "This date is before the first one.")
        return data
