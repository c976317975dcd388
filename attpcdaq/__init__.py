"""attpcdaq: run control for the AT-TPC's GET electronics."""

__version__ = "0.1.0"
