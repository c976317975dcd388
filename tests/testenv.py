"""Loaded as a plugin (``-p testenv``) before pytest-django reads the settings.

Points the data directory at a throwaway one, so no test touches a real database,
secret key or backup folder.
"""

import atexit
import os
import shutil
import tempfile

os.environ["ATTPCDAQ_DATA_DIR"] = tempfile.mkdtemp(prefix="attpcdaq-test-")

atexit.register(shutil.rmtree, os.environ["ATTPCDAQ_DATA_DIR"], ignore_errors=True)


import pytest  # noqa: E402 - after the data directory is set, as the docstring says

#: The run classes migration 0008 seeds; a transactional test's flush deletes them.
RUN_CLASSES = ["Testing", "Production", "Beam", "Pulser", "Junk"]


@pytest.fixture(autouse=True)
def _seeded_run_classes(request):
    """Give every database test the run classes a real installation starts with."""
    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db"} & set(request.fixturenames))
    if uses_db:
        request.getfixturevalue("_django_db_helper")  # the database is ready for this test
        from attpcdaq.daq.models import RunClass

        for order, name in enumerate(RUN_CLASSES):
            RunClass.objects.get_or_create(name=name, defaults={"order": order})
