"""``attpcdaq check``: is this installation fit for a shift, and what to fix if not.

Runs Django's deployment checks (``manage check --deploy``) and the project's own: the
secret key (strong, its file private), the data directory and the SQLite files (no
access for others), ``ALLOWED_HOSTS``, the database (reachable, migrated), every
enabled ECC server (a TCP connection to its SOAP port), every SSH host of a server or
router (resolvable, its SSH port answering) and the working directory of each router on
this machine. Prints one line per finding: ``FIX`` (exit status 1), ``WARN`` (worth a
look; exit status 0 when nothing else), ``ok``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

FIX, WARN, OK = "FIX", "WARN", "ok"
#: Django's deployment warnings about plain HTTP: said in one warning of ours when
#: ATTPCDAQ_HTTPS is not set.
PLAIN_HTTP = {"security.W004", "security.W008", "security.W012", "security.W016"}
#: Those that ATTPCDAQ_HTTPS=1 answers otherwise: the proxy in front redirects plain
#: HTTP (the engine and scripts on loopback keep plain HTTP).
ANSWERED_BY_THE_PROXY = {"security.W008"}


@dataclass
class Finding:
    level: str
    text: str


def add_check_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``attpcdaq check``."""
    parser = commands.add_parser("check", help="check this installation and say what to fix",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds to wait for each connection (2)")
    parser.add_argument("--quiet", action="store_true", help="print only what to fix or "
                        "look at")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run every check, print the findings, return 1 when something must be fixed."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attpcdaq.settings")
    try:
        import django

        django.setup()
    except Exception as error:  # settings that do not load: the first thing to fix
        print(f"{FIX:4}  the settings do not load: {error}")
        return 1
    findings = [*django_checks(), *file_checks(), *settings_checks()]
    database = database_checks()
    findings += database
    if not any(f.level == FIX and f.text.startswith("database") for f in database):
        findings += hardware_checks(args.timeout)
    for finding in findings:
        if not (args.quiet and finding.level == OK):
            print(f"{finding.level:4}  {finding.text}")
    fixes = sum(f.level == FIX for f in findings)
    warnings = sum(f.level == WARN for f in findings)
    print(f"attpcdaq check: {fixes} to fix, {warnings} warning(s)")
    return 1 if fixes else 0


def django_checks() -> list[Finding]:
    """Django's system and deployment checks (``check --deploy``)."""
    from django.conf import settings
    from django.core import checks

    found = []
    for message in checks.run_checks(include_deployment_checks=True):
        if message.is_silenced() or message.level < checks.WARNING:
            continue
        if message.id in (ANSWERED_BY_THE_PROXY if settings.HTTPS else PLAIN_HTTP):
            continue
        text = f"{message.id}: {message.msg}" + (f" Fix: {message.hint}" if message.hint
                                                   else "")
        found.append(Finding(FIX if message.level >= checks.ERROR else WARN,
                             " ".join(text.split())))
    if not found:
        found.append(Finding(OK, "Django's deployment checks"))
    return found


def _loose(path: Path) -> int:
    """The permission bits of ``path`` that let others than its owner in (0 if none)."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077


def file_checks() -> list[Finding]:
    """The data directory 0700, the secret key file and the SQLite files 0600."""
    from django.conf import settings

    found = []
    data_dir = Path(settings.DATA_DIR)
    if _loose(data_dir):
        found.append(Finding(FIX, f"the data directory {data_dir} is open to others "
                             f"(mode {stat.S_IMODE(data_dir.stat().st_mode):o}): "
                             f"chmod 700 '{data_dir}'"))
    else:
        found.append(Finding(OK, f"the data directory {data_dir} is private"))
    files = [data_dir / "secret_key"] if not os.environ.get("ATTPCDAQ_SECRET_KEY") else []
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        name = Path(database["NAME"])
        files += [name, Path(f"{name}-wal"), Path(f"{name}-shm")]
    for path in files:
        if path.exists() and _loose(path):
            found.append(Finding(FIX, f"{path} may be read by others (mode "
                                 f"{stat.S_IMODE(path.stat().st_mode):o}): chmod 600 '{path}'"))
    if all(not (p.exists() and _loose(p)) for p in files):
        found.append(Finding(OK, "the secret key and database files are private"))
    return found


def settings_checks() -> list[Finding]:
    """The secret key's strength, ALLOWED_HOSTS, DEBUG and HTTPS."""
    from django.conf import settings

    found = []
    key = settings.SECRET_KEY
    if len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-"):
        source = "ATTPCDAQ_SECRET_KEY" if os.environ.get("ATTPCDAQ_SECRET_KEY") else \
            f"{settings.DATA_DIR}/secret_key"
        found.append(Finding(FIX, f"the secret key ({source}) is weak: use at least 50 "
                             "random characters, e.g. unset ATTPCDAQ_SECRET_KEY and delete "
                             "the key file: one is made at the next start (everyone logs "
                             "in again)"))
    else:
        found.append(Finding(OK, "the secret key is strong"))
    hosts = [h.strip() for h in settings.ALLOWED_HOSTS]
    if "*" in hosts or any(h.startswith(".") and h.count(".") < 2 for h in hosts):
        found.append(Finding(FIX, f"ALLOWED_HOSTS {hosts} accepts any host name: set "
                             "ATTPCDAQ_ALLOWED_HOSTS to the names the site is reached by"))
    elif "" in hosts:
        found.append(Finding(FIX, f"ATTPCDAQ_ALLOWED_HOSTS has an empty name: {hosts}"))
    elif all(h in ("127.0.0.1", "localhost", "[::1]") for h in hosts):
        found.append(Finding(WARN, "ALLOWED_HOSTS is loopback only: other machines cannot "
                             "use the site (set ATTPCDAQ_ALLOWED_HOSTS to its names)"))
    else:
        found.append(Finding(OK, f"ALLOWED_HOSTS {', '.join(hosts)}"))
    if settings.DEBUG:
        found.append(Finding(FIX, "ATTPCDAQ_DEBUG=1 shows settings and code to anyone on "
                             "an error: unset it"))
    if not settings.HTTPS:
        found.append(Finding(WARN, "served over plain HTTP: passwords and sessions cross "
                             "the network readable; put a TLS proxy in front and set "
                             f"ATTPCDAQ_HTTPS=1 ({', '.join(sorted(PLAIN_HTTP))})"))
    return found


def database_checks() -> list[Finding]:
    """The database answers, and has every migration applied."""
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS]
    where = connection.settings_dict["NAME"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        pending = MigrationExecutor(connection).migration_plan(
            MigrationExecutor(connection).loader.graph.leaf_nodes())
    except Exception as error:
        return [Finding(FIX, f"database {where}: not reachable: {error}")]
    if pending:
        return [Finding(FIX, f"database {where}: {len(pending)} migration(s) not applied: "
                        "attpcdaq manage migrate (attpcdaq serve does it too)")]
    return [Finding(OK, f"database {where} reachable and migrated")]


def _connect(host: str, port: int, timeout: float) -> str:
    """"" when a TCP connection to host:port opens within ``timeout``, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as error:
        return error.strerror or str(error)


def _ssh_target(alias: str) -> tuple[str, int]:
    """The host name and port ``ssh`` would use for ``alias`` (its config read by ``ssh
    -G``, as the engine's asyncssh reads it); the text itself without OpenSSH."""
    host, port = alias.rpartition("@")[2], 22
    if shutil.which("ssh"):
        try:
            shown = subprocess.run(["ssh", "-G", "--", alias], capture_output=True,
                                   text=True, timeout=5, check=True).stdout
        except (subprocess.SubprocessError, OSError):
            return host, port
        for line in shown.splitlines():
            key, _, value = line.partition(" ")
            if key == "hostname":
                host = value.strip()
            elif key == "port" and value.strip().isdigit():
                port = int(value)
    return host, port


def _ssh_check(what: str, alias: str, timeout: float) -> Finding:
    host, port = _ssh_target(alias)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        return Finding(FIX, f"{what}: SSH host {alias!r} ({host}) does not resolve: "
                       f"{error.strerror or error}; correct it in Setup or ~/.ssh/config")
    if why := _connect(host, port, timeout):
        return Finding(FIX, f"{what}: SSH host {alias!r} ({host}:{port}) unreachable: {why}")
    return Finding(OK, f"{what}: SSH host {alias} ({host}:{port}) reachable")


def hardware_checks(timeout: float) -> list[Finding]:
    """Every enabled ECC server's SOAP port, every SSH host, local routers' directories."""
    from .daq.models import DataRouter, ECCServer

    try:
        servers = list(ECCServer.objects.order_by("name"))
        routers = list(DataRouter.objects.order_by("name"))
    except Exception as error:
        return [Finding(FIX, f"database: the setup cannot be read: {error}")]
    if not servers:
        return [Finding(WARN, "no ECC server is set up (Setup, or attpcdaq setup import)")]

    def ecc(server) -> Finding:
        where = f"ECC server {server.name} ({server.ip_address}:{server.port})"
        if why := _connect(server.ip_address, server.port, timeout):
            return Finding(FIX, f"{where} unreachable: {why}; start its getEccSoapServer "
                           "or correct its address and port in Setup")
        return Finding(OK, f"{where} reachable")

    jobs = [(ecc, (s,)) for s in servers if s.enabled]
    jobs += [(_ssh_check, (f"ECC server {s.name}", s.ssh_host, timeout))
             for s in servers if s.enabled and s.ssh_host]
    jobs += [(_ssh_check, (f"data router {r.name}", r.ssh_host, timeout))
             for r in routers if r.ssh_host]
    with ThreadPoolExecutor(max_workers=16) as pool:
        found = list(pool.map(lambda job: job[0](*job[1]), jobs))
    found += [Finding(WARN, f"ECC server {s.name} is disabled: not checked")
              for s in servers if not s.enabled]
    for router in routers:
        if router.ssh_host:
            continue
        where = f"data router {router.name} (this machine)"
        if not router.working_dir:
            found.append(Finding(WARN, f"{where}: no working directory set: its data "
                                 "cannot be filed"))
        elif not Path(router.working_dir).is_dir():
            found.append(Finding(FIX, f"{where}: working directory {router.working_dir} "
                                 "does not exist"))
        else:
            found.append(Finding(OK, f"{where}: working directory {router.working_dir}"))
    return found
