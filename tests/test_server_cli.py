"""`attpcdaq manage` and `attpcdaq token` on a fresh data directory."""

import os
import subprocess
import sys


def attpcdaq(data_dir, *args):
    return subprocess.run([sys.executable, "-m", "attpcdaq", *args], capture_output=True,
                          text=True, env={**os.environ, "ATTPCDAQ_DATA_DIR": str(data_dir)},
                          timeout=60)


def test_manage_and_token_on_a_fresh_data_dir(tmp_path):
    made = attpcdaq(tmp_path, "manage", "createsuperuser", "--noinput", "--username", "chief",
                    "--email", "chief@example.org")
    assert made.returncode == 0, made.stderr
    token = attpcdaq(tmp_path, "token", "chief")
    assert token.returncode == 0 and len(token.stdout.strip()) >= 40
    assert (tmp_path / "attpcdaq.sqlite3").exists()


def test_token_for_an_unknown_user_exits_2(tmp_path):
    result = attpcdaq(tmp_path, "token", "nobody")
    assert result.returncode == 2 and "no user named 'nobody'" in result.stderr
