"""Django admin of the DAQ: the hardware model, experiments, runs, the run sheet, the
shift logbook and the audit trail.

What the engine observes (states, online, errors) is shown but not editable: the
engine would overwrite it within a second. Commands and the heartbeat are read-only
records; API tokens can be revoked here but are issued by ``attpcdaq token USER``.
"""

from django.contrib import admin, messages

from .models import (
    ApiToken,
    Command,
    ConfigId,
    DataRouter,
    DataSource,
    ECCServer,
    EngineHeartbeat,
    Event,
    Experiment,
    LoadedConfig,
    LogEntry,
    Measurement,
    Observable,
    RunClass,
    RunConfig,
    RunEdit,
    RunMetadata,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin of records written by the system: look, filter, never edit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DataSourceInline(admin.TabularInline):
    """The boards an ECC server controls, and where each sends its data."""

    model = DataSource
    extra = 0
    autocomplete_fields = ["data_router"]


@admin.register(ECCServer)
class ECCServerAdmin(admin.ModelAdmin):
    """ECC servers, with their data sources inline."""

    list_display = ["name", "ip_address", "port", "enabled", "state", "is_online",
                    "is_transitioning", "selected_config", "last_seen"]
    list_filter = ["enabled", "is_online", "state"]
    search_fields = ["name", "ip_address"]
    readonly_fields = ["state", "transition", "is_transitioning", "is_online", "target_state",
                       "last_error", "last_error_at", "last_seen"]
    inlines = [DataSourceInline]

    def get_readonly_fields(self, request, obj=None):
        # The selection never changes under a run (services.selection_locked).
        from .services import selection_locked

        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "selected_config"] if obj is not None and selection_locked() \
            else fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Only the sets this server offers: the engine would refuse another's.
        if db_field.name == "selected_config":
            server_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = ConfigId.objects.filter(ecc_server_id=server_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ConfigId)
class ConfigIdAdmin(admin.ModelAdmin):
    """Configuration sets, as the engine last fetched them."""

    list_display = ["__str__", "ecc_server", "last_fetched"]
    list_filter = ["ecc_server"]
    search_fields = ["describe", "prepare", "configure"]

    def has_delete_permission(self, request, obj=None):
        # Deleting a selected set clears the selection: never under a run.
        from .services import selection_locked

        if selection_locked() and (obj is None or ECCServer.objects.filter(
                selected_config=obj).exists()):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(DataRouter)
class DataRouterAdmin(admin.ModelAdmin):
    """Data routers and what the engine last saw of them."""

    list_display = ["name", "ip_address", "port", "connection_type", "ssh_host", "is_online",
                    "is_clean", "data_rate", "last_checked"]
    list_filter = ["is_online", "is_clean", "connection_type"]
    search_fields = ["name", "ip_address", "ssh_host"]
    readonly_fields = ["is_online", "is_clean", "data_rate", "last_checked", "last_error"]


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    """Boards (CoBo, MuTAnT) and their links."""

    list_display = ["name", "ecc_server", "data_router"]
    list_filter = ["ecc_server", "data_router"]
    search_fields = ["name"]


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Experiments; one is active."""

    list_display = ["name", "is_active", "created"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    readonly_fields = ["is_active"]
    actions = ["activate"]

    @admin.action(description="Make the selected experiment the active one")
    def activate(self, request, queryset):
        """Activate one experiment (the model keeps the others inactive)."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one experiment.", messages.ERROR)
            return
        experiment = queryset.get()
        experiment.activate()
        self.message_user(request, f"{experiment} is now the active experiment.")


@admin.register(RunMetadata)
class RunMetadataAdmin(admin.ModelAdmin):
    """Runs: the title and reason are editable, the bookkeeping is not."""

    list_display = ["run_number", "experiment", "status", "start_datetime", "stop_datetime",
                    "duration", "title", "filed"]
    list_filter = ["experiment", "status", "filed"]
    search_fields = ["title"]
    readonly_fields = ["experiment", "run_number", "status", "start_datetime", "stop_datetime",
                       "configs", "manifest", "filed", "created"]

    def has_add_permission(self, request):
        return False  # the engine numbers and opens runs


@admin.register(Command)
class CommandAdmin(ReadOnlyAdmin):
    """The audit trail of what users asked and how it went."""

    list_display = ["id", "describe", "user", "status", "created", "finished", "error"]
    list_filter = ["status", "kind", "ecc_server"]
    search_fields = ["error", "user__username"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """What the engine saw; alarms are acknowledged here or on the status page."""

    list_display = ["time", "level", "source", "message", "acknowledged", "acknowledged_by"]
    list_filter = ["level", "acknowledged", "source"]
    search_fields = ["source", "message"]
    readonly_fields = ["time", "level", "source", "message", "run"]
    actions = ["acknowledge"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Acknowledge the selected events")
    def acknowledge(self, request, queryset):
        """Mark events as seen."""
        count = Event.acknowledge(queryset, request.user)
        self.message_user(request, f"{count} event(s) acknowledged.")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """API tokens: revoke by deleting; issue with ``attpcdaq token USER``."""

    list_display = ["user", "digest_prefix", "created", "last_used"]
    list_filter = ["user"]
    fields = ["user", "digest_prefix", "created", "last_used"]
    readonly_fields = fields

    @admin.display(description="digest")
    def digest_prefix(self, obj):
        """Enough of the digest to tell tokens apart, not to match one."""
        return f"{obj.digest[:8]}…"


@admin.register(EngineHeartbeat)
class EngineHeartbeatAdmin(ReadOnlyAdmin):
    """The engine's last beat: where it runs and since when."""

    list_display = ["hostname", "pid", "started", "beat"]


class _ConfigFilesAdmin(ReadOnlyAdmin):
    """What a server loaded at Configure: the set, when, and its files by name and hash."""

    exclude = ["files"]  # the texts: shown on the run page, too large for a form

    @admin.display(description="files")
    def file_summary(self, obj):
        """Each file's name and the start of its SHA-256."""
        return ", ".join(f"{f['filename']} ({f['sha256'][:12]})" for f in obj.file_list) or "none"


@admin.register(LoadedConfig)
class LoadedConfigAdmin(_ConfigFilesAdmin):
    """What each ECC server has loaded now (kept by the engine while it is configured)."""

    list_display = ["ecc_server", "config", "configured_at", "file_summary"]
    readonly_fields = ["ecc_server", "config", "configured_at", "problem", "file_summary"]


@admin.register(RunConfig)
class RunConfigAdmin(_ConfigFilesAdmin):
    """What each ECC server had loaded when a run started (copied at Start)."""

    list_display = ["run", "server_name", "config", "configured_at", "file_summary"]
    list_filter = ["server_name"]
    search_fields = ["server_name", "config"]
    readonly_fields = ["run", "server_name", "config", "configured_at", "problem",
                       "file_summary", "created"]


@admin.register(RunClass)
class RunClassAdmin(admin.ModelAdmin):
    """Run classes (Testing, Production, Beam, Pulser, Junk, ...): an admin may add more."""

    list_display = ["name", "order"]
    list_editable = ["order"]
    search_fields = ["name"]


@admin.register(Observable)
class ObservableAdmin(admin.ModelAdmin):
    """What the shift records for each run of an experiment (also on /observables/)."""

    list_display = ["name", "experiment", "kind", "units", "required", "order"]
    list_filter = ["experiment", "kind", "required"]
    search_fields = ["name", "units"]


@admin.register(Measurement)
class MeasurementAdmin(admin.ModelAdmin):
    """Values of the run sheet; edited on the runs page, where they are checked by type."""

    list_display = ["run", "observable", "value"]
    list_filter = ["observable__experiment", "observable"]
    search_fields = ["observable__name"]
    list_select_related = ["run", "observable"]


@admin.register(RunEdit)
class RunEditAdmin(ReadOnlyAdmin):
    """Who changed what on a run, and when: a record, never edited."""

    list_display = ["time", "run", "user", "field", "old", "new"]
    list_filter = ["field"]
    search_fields = ["field", "user__username"]
    list_select_related = ["run", "user"]


@admin.register(LogEntry)
class LogEntryAdmin(admin.ModelAdmin):
    """The shift logbook: free entries and the drafts written by the engine at a Stop."""

    list_display = ["time", "author", "run", "drafted", "confirmed_by", "__str__"]
    list_filter = ["drafted", "run__experiment"]
    search_fields = ["text", "author__username"]
    list_select_related = ["run", "author", "confirmed_by"]
