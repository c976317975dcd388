"""Safe defaults for a real deployment: file modes of a fresh data dir (a live
``attpcdaq serve``), ATTPCDAQ_HTTPS=1, session expiry, login throttling through the real
login view, and ``attpcdaq check`` against reachable and unreachable loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(data_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ATTPCDAQ_") and k != "DJANGO_SETTINGS_MODULE"}
    return {**env, "ATTPCDAQ_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **extra}


def attpcdaq(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attpcdaq", *args], capture_output=True,
                          text=True, env=environment(data_dir, **extra), timeout=120)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# File modes and HTTPS, on a live server ---------------------------------------------------


def test_a_fresh_data_dir_is_private_and_https_is_strict(tmp_path):
    data_dir = tmp_path / "fresh" / "data"  # neither exists yet
    port = free_port()
    # A permissive umask: the modes must not depend on the operator's.
    server = subprocess.Popen(
        ["sh", "-c", f"umask 022; exec '{sys.executable}' -m attpcdaq serve --port {port}"],
        env=environment(data_dir, ATTPCDAQ_HTTPS="1"), stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("w"))
    try:
        url = f"http://127.0.0.1:{port}/login/"
        request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = urllib.request.urlopen(request, timeout=5)
                break
            except (urllib.error.URLError, OSError):
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not answer in 60 s"
                time.sleep(0.2)
        with answer:
            assert answer.status == 200
            headers = answer.headers
        # HTTPS behind the proxy: HSTS for a year, cookies for HTTPS only.
        assert headers["Strict-Transport-Security"] == "max-age=31536000"
        cookies = headers.get_all("Set-Cookie")
        assert any(c.startswith("csrftoken=") and "Secure" in c for c in cookies), cookies
        # The engine writes its heartbeat: the WAL files are there while it runs.
        database = data_dir / "attpcdaq.sqlite3"
        while not (Path(f"{database}-wal").exists() and Path(f"{database}-shm").exists()):
            assert time.monotonic() < deadline, "no -wal and -shm files"
            time.sleep(0.1)
        assert mode(data_dir) == 0o700
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm"),
                     data_dir / "secret_key"):
            assert mode(path) == 0o600, path
        assert mode(data_dir.parent) != 0o700  # only the data dir itself is made private
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


SHOW = ("from django.conf import settings as s; import json; print(json.dumps(["
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_AGE]))")


def settings_with(tmp_path: Path, **extra: str) -> list:
    done = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + SHOW],
                          capture_output=True, text=True, timeout=60,
                          env=environment(tmp_path / "data", DJANGO_SETTINGS_MODULE=
                                          "attpcdaq.settings", **extra))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_https_settings_and_session_hours_from_the_environment(tmp_path):
    assert settings_with(tmp_path) == [False, False, 0, None, 12 * 3600]
    assert settings_with(tmp_path, ATTPCDAQ_HTTPS="1", ATTPCDAQ_SESSION_HOURS="0.5") == [
        True, True, 31_536_000, ["HTTP_X_FORWARDED_PROTO", "https"], 1800]
    assert settings_with(tmp_path, ATTPCDAQ_HTTPS="1", ATTPCDAQ_HSTS_SECONDS="3600")[2] == 3600
    refused = subprocess.run([sys.executable, "-c", "import django; django.setup()"],
                             capture_output=True, text=True, timeout=60,
                             env=environment(tmp_path / "data", ATTPCDAQ_SESSION_HOURS="a day",
                                             DJANGO_SETTINGS_MODULE="attpcdaq.settings"))
    assert refused.returncode != 0 and "ATTPCDAQ_SESSION_HOURS='a day'" in refused.stderr


# Sessions and login throttling, through the real login view --------------------------------


@pytest.fixture
def operator(db):
    return User.objects.create_user("shifter", password="correct horse")


def log_in(client, password: str, *, user: str = "shifter", address: str = "127.0.0.1"):
    return client.post("/login/", {"username": user, "password": password},
                       REMOTE_ADDR=address)


def test_a_login_lasts_the_session_hours(client, operator):
    answer = log_in(client, "correct horse")
    assert answer.status_code == 302
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    assert client.cookies["sessionid"]["max-age"] == 12 * 3600
    assert client.session.get_expiry_age() == 12 * 3600


def test_failed_logins_are_throttled_per_user_and_address(client, operator):
    User.objects.create_user("other", password="other pw")
    for _ in range(4):
        answer = log_in(client, "wrong")
        assert answer.status_code == 200 and b"correct username and password" in answer.content
    # A success clears the count: four more failures do not lock out.
    assert log_in(client, "correct horse").status_code == 302
    client.logout()
    for _ in range(4):
        assert log_in(client, "wrong").status_code == 200
    # The fifth failure locks this user out from this address, and says so...
    fifth = log_in(client, "wrong")
    assert fifth.status_code == 429
    assert "Too many failed logins" in fifth.content.decode()
    # ...even with the right password.
    refused = log_in(client, "correct horse")
    assert refused.status_code == 429
    text = refused.content.decode()
    assert "Too many failed logins (5) for this user from this address" in text
    assert "refused for 15 minutes" in text
    assert 'value="shifter"' in text  # the login page again, the name kept
    assert "_auth_user_id" not in client.session
    # Not from another address, and not for another user.
    assert log_in(client, "correct horse", address="127.0.0.2").status_code == 302
    client.logout()
    assert log_in(client, "other pw", user="other").status_code == 302
    client.logout()
    # Still refused a moment later; 15 minutes after the last failure it works again.
    assert log_in(client, "correct horse").status_code == 429
    AccessAttempt.objects.filter(username="shifter").update(
        attempt_time=AccessAttempt.objects.get(username="shifter").attempt_time
        - timedelta(minutes=15, seconds=1))
    assert log_in(client, "correct horse").status_code == 302


# attpcdaq check ---------------------------------------------------------------------------


def set_up(data_dir: Path, ecc_port: int, working_dir: Path) -> None:
    code = ("from attpcdaq.daq.models import ECCServer, DataRouter; "
            f"ECCServer.objects.create(name='CoBo[0]', ip_address='127.0.0.1', port={ecc_port}); "
            "DataRouter.objects.create(name='DataRouter0', ip_address='127.0.0.1', "
            f"working_dir={str(working_dir)!r})")
    done = attpcdaq(data_dir, "manage", "shell", "-c", code)
    assert done.returncode == 0, done.stderr


def test_check_names_an_unreachable_ecc_server_and_passes_once_it_listens(tmp_path):
    data_dir = tmp_path / "data"
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        set_up(data_dir, port, tmp_path)
        # Bound, not listening: the connection is refused.
        refused = attpcdaq(data_dir, "check", "--timeout", "1")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert (f"FIX   ECC server CoBo[0] (127.0.0.1:{port}) unreachable: Connection "
                "refused") in refused.stdout
        assert "attpcdaq check: 1 to fix" in refused.stdout
        assert "ok    database" in refused.stdout
        assert f"ok    data router DataRouter0 (this machine): working directory {tmp_path}" \
            in refused.stdout
        assert "WARN  served over plain HTTP" in refused.stdout

        listening.listen()
        passed = attpcdaq(data_dir, "check", "--timeout", "1")
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert f"ok    ECC server CoBo[0] (127.0.0.1:{port}) reachable" in passed.stdout
        assert "attpcdaq check: 0 to fix" in passed.stdout


def test_check_says_what_to_fix_in_the_files_and_settings(tmp_path):
    data_dir = tmp_path / "data"
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        set_up(data_dir, listening.getsockname()[1], tmp_path / "missing")
        (data_dir / "secret_key").chmod(0o644)
        data_dir.chmod(0o755)
        found = attpcdaq(data_dir, "check", "--quiet")
        assert found.returncode == 1
        assert f"chmod 600 '{data_dir / 'secret_key'}'" in found.stdout
        assert f"chmod 700 '{data_dir}'" in found.stdout
        assert f"working directory {tmp_path / 'missing'} does not exist" in found.stdout
        assert "ok    " not in found.stdout  # --quiet
        weak = attpcdaq(data_dir, "check", ATTPCDAQ_SECRET_KEY="tooshort",
                        ATTPCDAQ_ALLOWED_HOSTS="*", ATTPCDAQ_HTTPS="1")
        assert weak.returncode == 1
        assert "the secret key (ATTPCDAQ_SECRET_KEY) is weak" in weak.stdout
        assert "accepts any host name" in weak.stdout
        assert "served over plain HTTP" not in weak.stdout
        assert "security.W008" not in weak.stdout  # the proxy redirects
