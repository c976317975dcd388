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
