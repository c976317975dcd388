"""App configuration of :mod:`attpcdaq.daq`."""

from django.apps import AppConfig


class DaqConfig(AppConfig):
    """The DAQ app."""

    name = "attpcdaq.daq"
    verbose_name = "DAQ"
    default_auto_field = "django.db.models.BigAutoField"
