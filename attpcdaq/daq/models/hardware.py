"""The hardware: ECC servers, their configuration sets, data routers and data sources."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from django.db import models, transaction
from django.utils import timezone

from attpcdaq import get
from attpcdaq.get import EccClient, State

from ..validators import validate_address, validate_path_component


def _run_sync(coroutine_function: Callable[[], Awaitable]):
    """Run a coroutine from sync code (a shell, a script): never from the web or engine."""
    return asyncio.run(coroutine_function())


class ConfigId(models.Model):
    """A configuration set an ECC server offers: the names of its three files.

    On the server Describe reads ``describe-<describe>``, Prepare ``configure-<prepare>``
    and Configure ``configure-<configure>``, each ``.xcfg``, else ``.xml``
    (``prepare-*`` files are never read). As XML
    (what :meth:`as_xml` returns and the server expects)::

        <ConfigId>
          <SubConfigId type="describe">cobo0</SubConfigId>
          <SubConfigId type="prepare">experiment</SubConfigId>
          <SubConfigId type="configure">experiment</SubConfigId>
        </ConfigId>
    """

    describe = models.CharField(max_length=120,
                                help_text="Describe reads describe-NAME.xcfg (else .xml).")
    prepare = models.CharField(max_length=120,
                               help_text="Prepare reads configure-NAME.xcfg (else .xml).")
    configure = models.CharField(max_length=120,
                                 help_text="Configure reads configure-NAME.xcfg (else .xml).")
    ecc_server = models.ForeignKey("ECCServer", on_delete=models.CASCADE, related_name="configs",
                                   help_text="The ECC server that offers this set.")
    last_fetched = models.DateTimeField(default=timezone.now,
                                        help_text="When the server last listed this set.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ecc_server", "describe", "prepare",
                                                       "configure"], name="unique_config_set")]
        ordering = ["describe", "prepare", "configure"]
        verbose_name = "configuration set"

    def __str__(self) -> str:
        return f"{self.describe}/{self.prepare}/{self.configure}"

    def to_get(self) -> get.ConfigId:
        """The protocol layer's value for this set."""
        return get.ConfigId(self.describe, self.prepare, self.configure)

    def as_xml(self) -> str:
        """The ``<ConfigId>`` document shown in the class docstring."""
        return self.to_get().as_xml()

    @classmethod
    def from_xml(cls, xml: str) -> ConfigId:
        """An unsaved ConfigId read from its XML (raises :class:`attpcdaq.get.XmlError`)."""
        value = get.ConfigId.from_xml(xml)
        return cls(describe=value.describe, prepare=value.prepare, configure=value.configure)


class Excludable(models.Model):
    """Hardware an operator can take out of the system, with a reason, and put back.

    Excluded hardware is skipped by walks, Start, Stop and the Start checks; the
    runs record when and why (their coverage).
    """

    excluded = models.BooleanField(default=False, help_text="Taken out of the system by an "
                                   "operator: skipped by walks, Start, Stop and the checks.")
    excluded_reason = models.TextField(blank=True, help_text="Why it was taken out.")
    excluded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class ECCServer(Excludable):
    """An ECC server (getEccSoapServer) and what the engine last learned of it.

    The model holds configuration and observed state; the protocol work is done by
    :mod:`attpcdaq.get`. The state constants are the board states of GET-PROTOCOL.md;
    :attr:`RESET` is not a state but the target meaning "one step back".
    """

    OFF = State.OFF.value
    IDLE = State.IDLE.value
    DESCRIBED = State.DESCRIBED.value
    PREPARED = State.PREPARED.value
    READY = State.READY.value
    RUNNING = State.RUNNING.value
    PAUSED = State.PAUSED.value
    RESET = -1
    STATE_DICT = {state.value: state.label for state in State}
    STATE_CHOICES = list(STATE_DICT.items())

    name = models.CharField(max_length=80, unique=True, help_text="A unique name, e.g. CoBo[0].")
    ip_address = models.CharField(max_length=253, validators=[validate_address],
                                  verbose_name="address",
                                  help_text="IP address or host name of the ECC server.")
    port = models.PositiveIntegerField(default=8083, help_text="SOAP port (8083 by default).")
    ssh_host = models.CharField(max_length=200, blank=True, help_text="SSH host of its "
                                "machine (a ~/.ssh/config name allowed), for its log and "
                                "configuration backups; empty: this machine.")
    log_path = models.CharField(max_length=500, blank=True,
                                help_text="Path of the server's log file on its machine.")
    config_dir = models.CharField(max_length=500, blank=True,
                                  help_text="Directory of its .xcfg files on its machine, "
                                  "for the configuration backup of each run and the check "
                                  "at Start that they did not change since Configure.")
    enabled = models.BooleanField(default=True, help_text="Take part in system-wide "
                                  "transitions. Disable a broken board to run without it.")
    selected_config = models.ForeignKey(ConfigId, on_delete=models.SET_NULL, null=True,
                                        blank=True, related_name="+",
                                        help_text="The configuration set used for transitions.")
    state = models.IntegerField(choices=STATE_CHOICES, default=IDLE,
                                help_text="Last state the server reported.")
    transition = models.IntegerField(default=0, help_text="Transition code the server "
                                     "reported as running (0: none).")
    is_transitioning = models.BooleanField(default=False,
                                           help_text="A transition is running on the server.")
    is_online = models.BooleanField(default=False, help_text="The server answers GetState.")
    target_state = models.IntegerField(null=True, blank=True, choices=STATE_CHOICES,
                                       help_text="The state last asked for, if any.")
    last_error = models.TextField(blank=True, help_text="The last error talking to it.")
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True,
                                     help_text="When it last answered, as of its last change.")
    transition_started = models.DateTimeField(null=True, blank=True, help_text="When the "
                                              "engine began the transition it runs on it.")
    transition_times = models.JSONField(default=dict, blank=True, help_text="Seconds its "
                                        "recent transitions took, by operation (newest last).")

    class Meta:
        ordering = ["name"]
        verbose_name = "ECC server"

    def __str__(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        """The SOAP endpoint, ``http://HOST:PORT/``."""
        host = f"[{self.ip_address}]" if ":" in self.ip_address else self.ip_address
        return f"http://{host}:{self.port}/"

    @property
    def state_name(self) -> str:
        """The state's label, e.g. ``Ready``."""
        return self.STATE_DICT.get(self.state, f"Unknown ({self.state})")

    @property
    def transition_name(self) -> str:
        """The running transition's label, or empty."""
        return get.TransitionCode(self.transition).label if self.transition else ""

    def data_link_set(self) -> get.DataLinkSet:
        """Every link from this server's data sources to their routers."""
        return data_link_sets([self.pk])[self.pk]

    def get_data_link_xml_from_clients(self) -> str:
        """The ``<DataLinkSet>`` of this server's data sources (see :mod:`attpcdaq.get`)."""
        return self.data_link_set().as_xml()

    def _get_soap_client(self) -> EccClient:
        """A protocol client of this server (an async client: await its calls)."""
        return EccClient(self.url)

    def _get_transition(self, client: EccClient, current_state: int, target_state: int):
        """The coroutine function that takes the server one step to ``target_state``.

        Raises
        ------
        attpcdaq.get.PlanError
            When ``target_state`` is not one allowed step from ``current_state``.
        """
        steps = get.plan(current_state, target_state)
        if len(steps) != 1:
            raise get.PlanError(f"{self.STATE_DICT.get(target_state, target_state)} is not one "
                                f"step from {self.STATE_DICT.get(current_state, current_state)}")
        config = self.selected_config.to_get() if self.selected_config else None
        return functools.partial(client.transition, steps[0].operation, config,
                                 self.data_link_set())

    def refresh_state(self) -> None:
        """Ask the server its state now and save it (blocking: for shells and scripts)."""
        async def ask():
            async with self._get_soap_client() as client:
                return await client.get_state()
        reply = _run_sync(ask)
        self.state, self.transition = reply.state.value, reply.transition.value
        self.is_transitioning, self.is_online = reply.transitioning, True
        self.last_seen = timezone.now()
        self.save(update_fields=["state", "transition", "is_transitioning", "is_online",
                                 "last_seen"])

    def refresh_configs(self) -> list[ConfigId]:
        """Fetch the server's configuration sets and store them (blocking)."""
        async def ask():
            async with self._get_soap_client() as client:
                return await client.get_config_ids()
        return self.store_configs(_run_sync(ask))

    def store_configs(self, configs: list[get.ConfigId]) -> list[ConfigId]:
        """Store the sets a server offers now, dropping those it no longer offers.

        The selection never changes under a run: while a run is open the selected set
        is kept although the server stopped offering it (its ``last_fetched`` stays
        the last time the server listed it), and an event says so, once per run. The
        first refresh after the run drops it, which clears the selection, and records
        an event saying so (the status page shows it with Start's refusal).
        """
        from ..services import SELECTION_DROPPED, selection_locked
        from .control import Event

        now = timezone.now()
        with transaction.atomic():
            existing = {str(row): row for row in self.configs.all()}
            wanted = {str(value): value for value in configs}
            ConfigId.objects.bulk_create([
                ConfigId(ecc_server=self, describe=v.describe, prepare=v.prepare,
                         configure=v.configure, last_fetched=now)
                for key, v in wanted.items() if key not in existing])
            gone = [row for key, row in existing.items() if key not in wanted]
            selected = (ECCServer.objects.filter(pk=self.pk)
                        .values_list("selected_config_id", flat=True).first())
            locked = selection_locked() if any(r.pk == selected for r in gone) else ""
            for row in gone:
                if row.pk != selected:
                    continue
                if locked:
                    gone.remove(row)
                    message = (f"no longer offers its selected configuration {row}: kept, "
                               f"as {locked}")
                    if not Event.objects.filter(source=self.name, message=message).exists():
                        Event.objects.create(level=Event.Level.WARNING, source=self.name,
                                             message=message)
                else:
                    Event.objects.create(
                        level=Event.Level.WARNING, source=self.name,
                        message=f"{SELECTION_DROPPED}: {self.name} no longer offers {row}; "
                                "choose another (Start is refused without one)")
                    self.selected_config = None
                break
            self.configs.filter(pk__in=[row.pk for row in gone],
                                last_fetched__lt=now).delete()
            self.configs.filter(pk__in=[row.pk for key, row in existing.items()
                                        if key in wanted]).update(last_fetched=now)
        return list(self.configs.all())

    def change_state(self, target_state: int) -> None:
        """Take the server one step to ``target_state`` and wait (blocking).

        The engine does this for users; this is for shells and scripts.

        Raises
        ------
        attpcdaq.get.GetError
            When the step is not allowed, or the server refuses or fails it.
        """
        client = self._get_soap_client()
        transition = self._get_transition(client, self.state, target_state)  # reads the DB

        async def step():
            async with client:
                await transition()
                return await client.get_state()
        self.target_state = target_state
        reply = _run_sync(step)
        self.state, self.is_transitioning = reply.state.value, reply.transitioning
        self.save(update_fields=["state", "is_transitioning", "target_state"])


class DataRouter(Excludable):
    """A data router (dataRouter): receives a board's stream and writes .graw files."""

    class ConnectionType(models.TextChoices):
        """How boards send to it."""

        TCP = "TCP"
        FDT = "FDT"
        ICE = "ICE"
        ZBUF = "ZBUF"

    name = models.CharField(max_length=80, unique=True,
                            help_text="Unique name, sent to the ECC server in the data links.",
                            validators=[validate_path_component])
    ip_address = models.CharField(max_length=253, validators=[validate_address],
                                  verbose_name="address",
                                  help_text="IP address or host name boards send data to.")
    port = models.PositiveIntegerField(default=46005, help_text="Data port (46005 by default).")
    connection_type = models.CharField(max_length=4, choices=ConnectionType.choices,
                                       default=ConnectionType.TCP)
    ssh_host = models.CharField(max_length=200, blank=True, help_text="SSH host of its "
                                "machine (a ~/.ssh/config name allowed); empty: this machine.")
    working_dir = models.CharField(max_length=500, blank=True, help_text="Directory it writes "
                                   "into; found from the running process when empty.")
    log_path = models.CharField(max_length=500, blank=True, help_text="Its log file.")
    is_online = models.BooleanField(default=False, help_text="Its process is running.")
    is_clean = models.BooleanField(default=True, help_text="No unfiled .graw files in its "
                                   "working directory.")
    data_rate = models.FloatField(default=0.0, help_text="Bytes per second written, lately.")
    last_checked = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DataSource(models.Model):
    """A board (CoBo or MuTAnT) controlled by an ECC server, sending to a data router.

    ``name`` is the DataSender id of the configuration files: ``CoBo[N]`` or
    ``Mutant[master]``, or Configure fails.
    """

    name = models.CharField(max_length=80, help_text="DataSender id: CoBo[N] or Mutant[master].")
    ecc_server = models.ForeignKey(ECCServer, on_delete=models.CASCADE,
                                   related_name="data_sources")
    data_router = models.ForeignKey(DataRouter, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="data_sources")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["ecc_server", "name", "data_router"],
                                               name="unique_data_link")]

    def __str__(self) -> str:
        return self.name


def data_link_sets(server_pks: list[int]) -> dict[int, get.DataLinkSet]:
    """The :meth:`ECCServer.data_link_set` of each server, by primary key, in one query:
    a system-wide transition reads them for a hundred servers before its first request."""
    rows: dict[int, list[list]] = {pk: [] for pk in server_pks}
    for pk, *link in (DataSource.objects.filter(ecc_server_id__in=server_pks,
                                                data_router__isnull=False)
                      .values_list("ecc_server_id", "name", "data_router__name",
                                   "data_router__ip_address", "data_router__port",
                                   "data_router__connection_type")):
        rows[pk].append(link)
    # Sorted here, by sender then router, not by the database's collation.
    return {pk: get.DataLinkSet(tuple(get.DataLink(*link) for link in sorted(
        links, key=lambda link: (link[0], link[1])))) for pk, links in rows.items()}
