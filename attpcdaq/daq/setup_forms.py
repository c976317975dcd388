"""Forms of the setup pages: one ECC server, data router or data source, and the easy setup.

Every rule is :mod:`attpcdaq.daq.setup`'s (the import uses the same ones); a problem is
shown beside its field, and the form changes nothing unless every field is valid.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from . import setup
from .models import DataRouter, DataSource, ECCServer

PORT_MESSAGES = {"min_value": "must be 1-65535", "max_value": "must be 1-65535",
                 "invalid": "must be a whole number from 1 to 65535"}


def _rule(rule, value, **options):
    message = rule(value, **options)
    if message:
        raise ValidationError(message[0].upper() + message[1:] + ".")
    return value


def _port_field(default: int) -> forms.IntegerField:
    return forms.IntegerField(min_value=1, max_value=65535, initial=default,
                              error_messages=PORT_MESSAGES,
                              widget=forms.NumberInput(attrs={"min": 1, "max": 65535}))


def _address_field(help_text: str) -> forms.CharField:
    return forms.CharField(label="Address", max_length=253, help_text=help_text)


class _BootstrapMixin:
    """Bootstrap classes on every widget, ``is-invalid`` on those with errors."""

    def _style(self) -> None:
        for name, bound in self.fields.items():
            widget = bound.widget
            if isinstance(widget, forms.CheckboxInput | forms.RadioSelect):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            if self.is_bound and name in self.errors:
                css += " is-invalid"
            widget.attrs["class"] = css

    def full_clean(self):
        super().full_clean()
        self._style()


class _SetupForm(_BootstrapMixin, forms.ModelForm):
    """The name unique (letter case aside), the rules, and no change under a run."""

    #: Fields whose change matters to a described board: refused unless it is Idle.
    linked_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._style()

    def clean_name(self):
        name = _rule(setup.check_name, self.cleaned_data["name"])
        model = self._meta.model
        other = model.objects.filter(name__iexact=name).exclude(pk=self.instance.pk).first()
        if other is not None:
            what = model._meta.verbose_name
            raise ValidationError(f"There is already a {what} named {other.name!r} "
                                  "(names are unique, letter case aside).")
        return name

    def clean_ip_address(self):
        value = _rule(setup.check_address, self.cleaned_data["ip_address"])
        return setup.normal_address(value)

    def clean_ssh_host(self):
        return _rule(setup.check_ssh_host, self.cleaned_data["ssh_host"])

    def clean_log_path(self):
        return _rule(setup.check_path, self.cleaned_data["log_path"])

    def servers_concerned(self) -> list[ECCServer]:
        return []

    def clean(self):
        cleaned = super().clean()
        refusal = setup.open_run_refusal()
        if refusal:
            raise ValidationError(refusal[0].upper() + refusal[1:] + ".")
        if self.instance.pk and any(name in self.changed_data for name in self.linked_fields):
            busy = setup.not_idle(self.servers_concerned())
            if busy:
                raise ValidationError(
                    "Its boards were described and told where to send their data: "
                    + "; ".join(busy) + ". Reset to Idle before changing "
                    + ", ".join(self[n].label.lower() for n in self.linked_fields
                                if n in self.changed_data) + ".")
        address, port = cleaned.get("ip_address"), cleaned.get("port")
        if address and port:
            other = (self._meta.model.objects.filter(ip_address=address, port=port)
                     .exclude(pk=self.instance.pk).first())
            if other is not None:
                self.add_error("port", f"{address}:{port} is already the address of "
                               f"{other.name}.")
        return cleaned


class ECCServerForm(_SetupForm):
    ip_address = _address_field("IP address of the ECC server (e.g. 10.0.0.20).")
    port = _port_field(8083)
    linked_fields = ("name", "ip_address", "port")

    class Meta:
        model = ECCServer
        fields = ["name", "ip_address", "port", "ssh_host", "log_path", "config_dir",
                  "enabled"]
        labels = {"ip_address": "Address", "ssh_host": "SSH host", "config_dir":
                  "Configuration directory"}

    def clean_config_dir(self):
        return _rule(setup.check_path, self.cleaned_data["config_dir"], directory=True)

    def servers_concerned(self) -> list[ECCServer]:
        return [ECCServer.objects.get(pk=self.instance.pk)]


class DataRouterForm(_SetupForm):
    ip_address = _address_field("Address the boards send their data to.")
    port = _port_field(46005)
    linked_fields = ("name", "ip_address", "port", "connection_type")

    class Meta:
        model = DataRouter
        fields = ["name", "ip_address", "port", "connection_type", "ssh_host", "working_dir",
                  "log_path"]
        labels = {"ip_address": "Address", "ssh_host": "SSH host",
                  "working_dir": "Working directory"}

    def clean_working_dir(self):
        return _rule(setup.check_path, self.cleaned_data["working_dir"], directory=True)

    def servers_concerned(self) -> list[ECCServer]:
        return list(ECCServer.objects.filter(data_sources__data_router=self.instance)
                    .distinct())


class DataSourceForm(_BootstrapMixin, forms.ModelForm):
    """A board: its sender id, its ECC server and its router (one link per sender)."""

    class Meta:
        model = DataSource
        fields = ["name", "ecc_server", "data_router"]
        labels = {"name": "Sender id", "ecc_server": "ECC server", "data_router": "Data router"}
        help_texts = {"data_router": "Where it sends its data; empty: nowhere (Configure "
                      "then fails for it)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ecc_server"].queryset = ECCServer.objects.order_by("name")
        self.fields["data_router"].queryset = DataRouter.objects.order_by("name")
        self.fields["ecc_server"].error_messages["invalid_choice"] = (
            "Choose one of the ECC servers listed.")
        self.fields["data_router"].error_messages["invalid_choice"] = (
            "Choose one of the data routers listed.")
        self._style()

    def clean_name(self):
        return _rule(setup.check_source_name, self.cleaned_data["name"])

    def validate_unique(self):
        pass  # clean() says it better (the model's constraint is narrower than the rule)

    def clean(self):
        cleaned = super().clean()
        refusal = setup.open_run_refusal()
        if refusal:
            raise ValidationError(refusal[0].upper() + refusal[1:] + ".")
        name, server = cleaned.get("name"), cleaned.get("ecc_server")
        if name and server:
            other = (DataSource.objects.filter(name=name).exclude(pk=self.instance.pk)
                     .select_related("ecc_server", "data_router").first())
            if other is not None:
                where = (f"on {server.name}: the ECC server keeps only the first link of a "
                         "sender" if other.ecc_server_id == server.pk else
                         f"on the ECC server {other.ecc_server.name}: a board has one "
                         "sender id in the detector")
                self.add_error("name", f"{name} is already linked (to "
                               f"{other.data_router or 'no router'}) {where}.")
        if self.changed_data or not self.instance.pk:
            servers = [s for s in (server, self.instance.ecc_server if self.instance.pk
                                   else None) if s is not None]
            busy = setup.not_idle(ECCServer.objects.filter(pk__in=[s.pk for s in servers]))
            if busy:
                raise ValidationError("The ECC server must be Idle to change its boards' "
                                      "links: " + "; ".join(busy) + ".")
        return cleaned


class EasySetupForm(_BootstrapMixin, forms.Form):
    """What :func:`attpcdaq.daq.setup.easy_document` needs."""

    cobos = forms.IntegerField(label="Number of CoBos", min_value=1, max_value=setup.MAX_COBO
                               + 1, initial=1, error_messages={
                                   "min_value": "At least one CoBo.",
                                   "max_value": f"At most {setup.MAX_COBO + 1} CoBos.",
                                   "invalid": "A whole number of CoBos."})
    ecc_layout = forms.ChoiceField(label="ECC servers", widget=forms.RadioSelect,
                                   choices=[("each", "One per CoBo"),
                                            ("one", "One for all")], initial="each")
    first_ecc_address = forms.CharField(label="First ECC server address", max_length=15,
                                        initial="10.0.0.20", help_text="The last number "
                                        "counts up: 10.0.0.20, 10.0.0.21, …")
    ecc_port = _port_field(8083)
    first_router_address = forms.CharField(label="First data router address", max_length=15,
                                           initial="10.0.0.20", help_text="One router per "
                                           "board, counting up the same way.")
    router_port = _port_field(46005)
    connection_type = forms.ChoiceField(choices=DataRouter.ConnectionType.choices,
                                        initial="TCP")
    mutant = forms.BooleanField(label="With a MuTAnT", required=False)
    mutant_own_server = forms.BooleanField(label="The MuTAnT has its own ECC server",
                                           required=False, help_text="It takes the next "
                                           "ECC address; otherwise it is on the first server.")
    ssh_user = forms.CharField(label="SSH user", required=False, max_length=32,
                               help_text="Reach each machine as USER@address; empty: "
                               "no SSH (this machine).")
    ecc_log_path = forms.CharField(label="ECC server log", required=False, max_length=500)
    config_dir = forms.CharField(label="Configuration directory", required=False,
                                 max_length=500)
    router_working_dir = forms.CharField(label="Router working directory", required=False,
                                         max_length=500)
    router_log_path = forms.CharField(label="Router log", required=False, max_length=500)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._style()

    def clean_ssh_user(self):
        user = self.cleaned_data["ssh_user"]
        if user and not setup._SSH_USER.fullmatch(user):
            raise ValidationError("Letters, digits, '.', '_' and '-' only, not starting "
                                  "with '-' or '.'.")
        return user

    def clean_ecc_log_path(self):
        return _rule(setup.check_path, self.cleaned_data["ecc_log_path"])

    def clean_config_dir(self):
        return _rule(setup.check_path, self.cleaned_data["config_dir"], directory=True)

    def clean_router_working_dir(self):
        return _rule(setup.check_path, self.cleaned_data["router_working_dir"],
                     directory=True)

    def clean_router_log_path(self):
        return _rule(setup.check_path, self.cleaned_data["router_log_path"])

    def plan(self) -> setup.EasySetup:
        data = self.cleaned_data
        return setup.EasySetup(
            cobos=data["cobos"], one_ecc_server=data["ecc_layout"] == "one",
            first_ecc_address=data["first_ecc_address"], ecc_port=data["ecc_port"],
            first_router_address=data["first_router_address"],
            router_port=data["router_port"], connection_type=data["connection_type"],
            mutant=data["mutant"], mutant_own_server=data["mutant"] and
            data["mutant_own_server"], ssh_user=data["ssh_user"],
            ecc_log_path=data["ecc_log_path"], config_dir=data["config_dir"],
            router_working_dir=data["router_working_dir"],
            router_log_path=data["router_log_path"])

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        plan = self.plan()
        servers = (1 if plan.one_ecc_server else plan.cobos) + (
            1 if plan.mutant and plan.mutant_own_server else 0)
        routers = plan.cobos + (1 if plan.mutant else 0)
        for name, count in (("first_ecc_address", servers),
                            ("first_router_address", routers)):
            try:
                setup.count_up(cleaned[name], count)
            except ValueError as exc:
                self.add_error(name, str(exc)[0].upper() + str(exc)[1:] + ".")
        if not self.errors:
            self.document = setup.easy_document(plan)
            problems = setup.validate_document(self.document)
            if problems:  # e.g. the ECC and router address ranges overlap on one port
                raise ValidationError(problems)
        return cleaned


class ImportForm(forms.Form):
    file = forms.FileField(label="Setup file (JSON)", error_messages={
        "required": "Choose a setup file (exported from this page or by attpcdaq setup "
                    "export).", "empty": "The file is empty."})

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > setup.MAX_DOCUMENT_BYTES:
            raise ValidationError(f"The file is larger than {setup.MAX_DOCUMENT_BYTES} bytes.")
        try:
            self.document = setup.parse(upload.read())
        except setup.InvalidSetup as exc:
            raise ValidationError(exc.problems) from None
        return upload
