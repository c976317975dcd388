"""The configuration the hardware really loaded: per ECC server now, and per run.

Configure answers a ``<ConfigSet>`` holding the full text of every file the server
used. The engine keeps it per server (:class:`LoadedConfig`, replaced at each
successful Configure, dropped when the server goes below Ready or restarts) and
copies it onto each run at Start (:class:`RunConfig`): a backup of what the
boards were configured with, even when no SSH access to the server's machine
exists. ``files`` is a list of ``{"filename", "sha256", "text"}``; ``sha256`` is
:func:`attpcdaq.remote.backup.text_digest` of the text (``sha256sum`` of a UTF-8
file with LF line ends).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


def file_entries(files: object) -> list[dict[str, str]]:
    """The well-formed entries of a ``files`` list; anything else reads as missing."""
    entries = []
    for entry in files if isinstance(files, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
            entries.append({"filename": entry["filename"],
                            "sha256": str(entry.get("sha256", "")),
                            "text": entry["text"] if isinstance(entry.get("text"), str)
                            else ""})
    return entries


class _ConfigFiles(models.Model):
    """What both records hold: the set, when it was configured, the files' texts."""

    config = models.CharField(max_length=400, blank=True,
                              help_text="The configuration set configured, "
                              "describe/prepare/configure.")
    configured_at = models.DateTimeField(null=True, blank=True,
                                         help_text="When Configure succeeded.")
    files = models.JSONField(default=list, blank=True,
                             help_text="Every file the server used: filename, sha256, text.")
    problem = models.TextField(blank=True, help_text="Why the files are not known, when "
                               "Configure's answer could not be read.")

    class Meta:
        abstract = True

    @property
    def file_list(self) -> list[dict[str, str]]:
        """The files, each ``{"filename", "sha256", "text"}``, by filename."""
        return sorted(file_entries(self.files), key=lambda f: f["filename"])

    @property
    def filenames(self) -> list[str]:
        """The files' names, sorted."""
        return [f["filename"] for f in self.file_list]



class LoadedConfig(_ConfigFiles):
    """What an ECC server loaded at its last successful Configure, while it is configured."""

    ecc_server = models.OneToOneField("ECCServer", on_delete=models.CASCADE,
                                      related_name="loaded_config")

    class Meta:
        ordering = ["ecc_server__name"]
        verbose_name = "loaded configuration"

    def __str__(self) -> str:
        return f"{self.ecc_server} loaded {self.config or '(unknown set)'}"


class RunConfig(_ConfigFiles):
    """The configuration one ECC server had loaded when a run started (copied at Start)."""

    run = models.ForeignKey("RunMetadata", on_delete=models.CASCADE,
                            related_name="loaded_configs")
    server_name = models.CharField(max_length=80, help_text="The ECC server, by name "
                                   "(kept when the server is renamed or deleted).")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "server_name"]
        constraints = [models.UniqueConstraint(fields=["run", "server_name"],
                                               name="one_config_per_server_and_run")]
        verbose_name = "run configuration"

    def __str__(self) -> str:
        return f"{self.run}: {self.server_name} {self.config}"
