"""The setup: ECC servers, data routers and data sources, checked, exported and replaced.

No Django request in here: the setup pages (``setup_views``), the easy setup and the
``attpcdaq setup export|import`` command all use these functions.

- The **rules** (``check_*``) return a message, or ``""`` when the value is fine; the
  forms (``setup_forms``) show them beside the field and :func:`validate_document`
  names them with their path (``ecc_servers[2].port: must be 1-65535``).
- :func:`export_setup` gives the whole setup as a JSON-ready dict (``version`` 1),
  :func:`dumps` its text; :func:`validate_document` finds every problem of one at
  once; :func:`apply_setup` replaces the setup with a valid one in one transaction,
  refused (:class:`SetupRefused`, nothing changed) while a run is open, a server is
  not Idle or a command is waiting. Hardware kept by name keeps its id, so its
  configuration sets, selection, commands and events stay.

Export, import, export gives the same text: lists are sorted by name, every field is
always written, and the import stores exactly what it was given (an IPv6 address in
the form the database keeps it, so export it once before comparing).
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from dataclasses import dataclass, field

from django.db import transaction
from django.utils.ipv6 import clean_ipv6_address

from .models import (
    Command,
    DataRouter,
    DataSource,
    ECCServer,
    RunMetadata,
    UnattributedData,
)

#: The version of the export format this code writes and reads.
VERSION = 1
MAX_NAME = 80
MAX_SSH_HOST = 200
MAX_PATH = 500
#: At most this many items of each kind in an import (far more than any detector).
MAX_ITEMS = 1000
#: The biggest import file accepted, in bytes.
MAX_DOCUMENT_BYTES = 2_000_000
MAX_COBO = 255

ECC_FIELDS = ("name", "ip_address", "port", "ssh_host", "log_path", "config_dir", "enabled")
ROUTER_FIELDS = ("name", "ip_address", "port", "connection_type", "ssh_host", "working_dir",
                 "log_path")
SOURCE_FIELDS = ("name", "ecc_server", "data_router")
CONNECTION_TYPES = tuple(DataRouter.ConnectionType.values)

_COBO = re.compile(r"CoBo\[(0|[1-9][0-9]{0,2})\]")
_MUTANT = re.compile(r"Mutant\[[A-Za-z0-9_]{1,32}\]")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}")
# A ~/.ssh/config Host alias: what ssh reads as one word and no shell would expand.
_SSH_ALIAS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


class SetupRefused(Exception):
    """The setup cannot change now (a run is open, a server is busy); nothing changed."""


# The rules ----------------------------------------------------------------------------

def _hidden_characters(value: str) -> str:
    """What is wrong with characters of ``value`` nobody can see, or ""."""
    for ch in value:
        if ch == "\x00":
            return "may not contain NUL characters"
        category = unicodedata.category(ch)
        if category == "Cc":
            return "may not contain control characters"
        if category in ("Cf", "Zl", "Zp"):
            return (f"may not contain invisible or direction-changing characters "
                    f"(U+{ord(ch):04X})")
    return ""


def check_name(value: str) -> str:
    """A name of an ECC server or data router: one word of a path, shown on every page."""
    if not value or not value.strip():
        return "may not be empty"
    if len(value) > MAX_NAME:
        return f"may be at most {MAX_NAME} characters (this has {len(value)})"
    if value != value.strip():
        return "may not start or end with white space"
    problem = _hidden_characters(value)
    if problem:
        return problem
    if value in (".", "..") or "/" in value or "\\" in value:
        return "may not be '.' or '..' or contain a slash"
    if value.startswith("-"):
        return "may not start with '-'"
    return ""


def is_ip_address(value: str) -> bool:
    """An IPv4 or IPv6 address (without a zone such as ``%eth0``)."""
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_host_name(value: str) -> str:
    """A host name of RFC 1123 labels (letters, digits, '-'), at most 253 characters."""
    if len(value) > 253:
        return "a host name is at most 253 characters"
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    for label in labels:
        if not _LABEL.fullmatch(label):
            return ("is neither an IP address nor a host name (letters, digits and '-' "
                    "between dots, at most 63 each, not starting or ending with '-')")
    if labels[-1].isdigit():
        return "is not a valid IP address"  # 10.0.0.300, 1.2.3: never a host name
    return ""


def check_address(value: str) -> str:
    """The address of an ECC server or data router: an IP address or a host name."""
    if not value:
        return "may not be empty"
    if value != value.strip() or any(ch.isspace() for ch in value):
        return "may not contain spaces"
    problem = _hidden_characters(value)
    if problem:
        return problem
    if is_ip_address(value):
        return ""
    return check_host_name(value)


def normal_address(value: str) -> str:
    """The address as the database keeps it (IPv6 compressed, lower case)."""
    if ":" in value and is_ip_address(value):
        return clean_ipv6_address(value)
    return value


def check_port(value) -> str:
    """A TCP port: a whole number from 1 to 65535."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number from 1 to 65535"
    if not 1 <= value <= 65535:
        return "must be 1-65535"
    return ""


def check_ssh_host(value: str) -> str:
    """Empty (this machine), a host name or IP, ``user@host``, or a ~/.ssh/config alias."""
    if not value:
        return ""
    if len(value) > MAX_SSH_HOST:
        return f"may be at most {MAX_SSH_HOST} characters (this has {len(value)})"
    problem = _hidden_characters(value)
    if problem:
        return problem
    if any(ch.isspace() for ch in value):
        return "may not contain spaces"
    if value.startswith("-"):
        return "may not start with '-' (ssh would read it as an option)"
    bad = sorted({ch for ch in value if not (ch.isascii() and (ch.isalnum() or ch in "._-@:"))})
    if bad:
        return ("may not contain " + " ".join(repr(ch) for ch in bad[:5])
                + ": a host name, user@host or an ~/.ssh/config alias")
    user, at, host = value.rpartition("@")
    if at:
        if not _SSH_USER.fullmatch(user):
            return f"the user name {user!r} is not valid (letters, digits, '.', '_', '-')"
        if not host:
            return "has no host after '@'"
    if host.startswith("-"):
        return "the host may not start with '-'"
    if ":" in host:
        return "" if is_ip_address(host) else "':' is allowed only in an IPv6 address"
    if not _SSH_ALIAS.fullmatch(host):
        return "is neither a host name nor an ~/.ssh/config alias"
    return ""


def check_path(value: str, *, directory: bool = False) -> str:
    """Empty, or an absolute path on the machine concerned."""
    if not value:
        return ""
    if len(value) > MAX_PATH:
        return f"may be at most {MAX_PATH} characters (this has {len(value)})"
    problem = _hidden_characters(value)
    if problem:
        return problem
    if not value.startswith("/"):
        return "must be an absolute path (starting with /)"
    if value != value.strip():
        return "may not start or end with white space"
    if ".." in value.split("/"):
        return "may not contain '..'"
    if not directory and value.endswith("/"):
        return "must name a file, not end with /"
    return ""


def check_source_name(value: str) -> str:
    """A data sender id: ``CoBo[N]`` (N 0-255) or ``Mutant[NAME]``."""
    if not value:
        return "may not be empty"
    cobo = _COBO.fullmatch(value)
    if cobo:
        return "" if int(cobo.group(1)) <= MAX_COBO else f"CoBo numbers go from 0 to {MAX_COBO}"
    if _MUTANT.fullmatch(value):
        return ""
    shown = value if len(value) <= 40 else value[:40] + "…"
    return (f"{shown!r} is not a data sender id: CoBo[N] (N 0-{MAX_COBO}, no leading "
            "zeros) or Mutant[NAME] (letters, digits, '_')")


def check_connection_type(value) -> str:
    if value not in CONNECTION_TYPES:
        return "must be one of " + ", ".join(CONNECTION_TYPES)
    return ""


# What blocks a change --------------------------------------------------------------------

def open_run_refusal() -> str:
    run = RunMetadata.objects.filter(status__in=RunMetadata.OPEN).order_by("-created").first()
    if run is None:
        return ""
    return (f"run {run.run_number} of {run.experiment.name} is "
            f"{run.get_status_display().lower()}: the setup cannot change under a run")


def not_idle(servers) -> list[str]:
    """The servers of ``servers`` that are not Idle (or are in a transition), each said."""
    said = []
    for server in servers:
        if server.is_transitioning:
            said.append(f"{server.name} is in a transition")
        elif server.state != ECCServer.IDLE:
            said.append(f"{server.name} is {server.state_name}")
    return said


def change_refusal(servers=None) -> str:
    """Why the setup (or these servers) cannot change now, or ""."""
    refusal = open_run_refusal()
    if refusal:
        return refusal
    servers = list(ECCServer.objects.all()) if servers is None else list(servers)
    busy = not_idle(servers)
    if busy:
        return ("every ECC server concerned must be Idle: " + "; ".join(busy)
                + " (Reset it to Idle first)")
    commands = Command.objects.filter(status__in=Command.ACTIVE, kind__in=(
        Command.Kind.TRANSITION, Command.Kind.RESET))
    if commands.exists():
        return "a transition command is waiting or running: wait for it to finish"
    return ""


def removal_refusal(obj) -> str:
    """Why ``obj`` (a server, router or source) cannot be removed now, or ""."""
    if isinstance(obj, ECCServer):
        return change_refusal([obj])
    if isinstance(obj, DataSource):
        return change_refusal([obj.ecc_server])
    refusal = change_refusal(ECCServer.objects.filter(data_sources__data_router=obj)
                             .distinct())
    if refusal:
        return refusal
    waiting = UnattributedData.objects.filter(router=obj, decision="").count()
    if waiting:
        return (f"{obj.name} has {waiting} set(s) of unattributed files waiting for a "
                "choice on the status page: decide first")
    return ""


# Export ----------------------------------------------------------------------------------

def export_setup() -> dict:
    """The whole setup, as :func:`dumps` writes it."""
    servers = [{name: getattr(s, name) for name in ECC_FIELDS}
               for s in ECCServer.objects.order_by("name")]
    routers = [{name: getattr(r, name) for name in ROUTER_FIELDS}
               for r in DataRouter.objects.order_by("name")]
    sources = [{"name": s.name, "ecc_server": s.ecc_server.name,
                "data_router": s.data_router.name if s.data_router else None}
               for s in DataSource.objects.select_related("ecc_server", "data_router")]
    sources.sort(key=lambda s: (s["ecc_server"], s["name"], s["data_router"] or ""))
    return {"version": VERSION, "ecc_servers": servers, "data_routers": routers,
            "data_sources": sources}


def dumps(document: dict) -> str:
    """The text of an export: stable, UTF-8 as is, one field a line, a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# Import ----------------------------------------------------------------------------------

@dataclass
class Problems:
    """Every problem of a document, each with its path."""

    items: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def __bool__(self) -> bool:
        return bool(self.items)


class InvalidSetup(Exception):
    """A setup document with problems; ``problems`` names each with its path."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def loads(text: str | bytes) -> dict:
    """The document in ``text``; raises :class:`InvalidSetup` when it is not JSON."""
    if isinstance(text, bytes):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise InvalidSetup([f"the file is larger than {MAX_DOCUMENT_BYTES} bytes"])
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidSetup([f"the file is not UTF-8 text (byte {exc.start})"]) from None
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InvalidSetup([f"the file is larger than {MAX_DOCUMENT_BYTES} characters"])
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSetup([f"not JSON: {exc.msg} at line {exc.lineno}, column "
                            f"{exc.colno}"]) from None
    except RecursionError:
        raise InvalidSetup(["not JSON: nested too deeply"]) from None


def _items(document: dict, key: str, problems: Problems) -> list:
    value = document.get(key)
    if key not in document:
        problems.add(key, "missing (a list, maybe empty)")
        return []
    if not isinstance(value, list):
        problems.add(key, "must be a list")
        return []
    if len(value) > MAX_ITEMS:
        problems.add(key, f"has {len(value)} items, at most {MAX_ITEMS} are accepted")
        return []
    return value


def _fields(item, path: str, allowed: tuple[str, ...], problems: Problems) -> dict | None:
    if not isinstance(item, dict):
        problems.add(path, "must be an object")
        return None
    for key in item:
        if key not in allowed:
            problems.add(f"{path}.{str(key)[:40]}", "unknown field (known: "
                         + ", ".join(allowed) + ")")
    for key in allowed:
        if key not in item:
            problems.add(f"{path}.{key}", "missing")
    return item


def _check(item: dict, path: str, key: str, check, problems: Problems, **options) -> None:
    if key in item:
        message = check(item[key], **options)
        if message:
            problems.add(f"{path}.{key}", message)


def _text(value, rule=None, **options) -> str:
    if not isinstance(value, str):
        return "must be a string"
    return rule(value, **options) if rule else ""


def _unique(names: list[tuple[int, str]], path: str, what: str, problems: Problems) -> None:
    """Names used twice (letter case aside), each named with the item that had it first."""
    first: dict[str, int] = {}
    for index, name in names:
        key = name.casefold()
        if key in first:
            problems.add(f"{path}[{index}].name", f"{what} {name!r} is already "
                         f"{path}[{first[key]}] (names are unique, letter case aside)")
        else:
            first[key] = index


def _same_endpoint(items: list[tuple[int, dict]], path: str, what: str,
                   problems: Problems) -> None:
    seen: dict[tuple[str, int], int] = {}
    for index, item in items:
        endpoint = (normal_address(item["ip_address"]), item["port"])
        if endpoint in seen:
            problems.add(f"{path}[{index}].port", f"{endpoint[0]}:{endpoint[1]} is already "
                         f"the address of {what} {path}[{seen[endpoint]}]")
        else:
            seen[endpoint] = index


def validate_document(document) -> list[str]:
    """Every problem of a setup document, each with its path; empty when it is valid."""
    problems = Problems()
    if not isinstance(document, dict):
        problems.add("", "the document must be a JSON object with version, ecc_servers, "
                     "data_routers and data_sources")
        return problems.items
    known = ("version", "ecc_servers", "data_routers", "data_sources")
    for key in document:
        if key not in known:
            problems.add(str(key)[:40], "unknown key (known: " + ", ".join(known) + ")")
    version = document.get("version")
    if "version" not in document:
        problems.add("version", f"missing (this program reads version {VERSION})")
    elif isinstance(version, bool) or version != VERSION:
        problems.add("version", f"{str(version)[:20]!r} is not a version this program "
                     f"reads ({VERSION})")

    servers = _items(document, "ecc_servers", problems)
    routers = _items(document, "data_routers", problems)
    sources = _items(document, "data_sources", problems)

    good_servers, good_routers = [], []
    for index, item in enumerate(servers):
        path = f"ecc_servers[{index}]"
        item = _fields(item, path, ECC_FIELDS, problems)
        if item is None:
            continue
        before = len(problems.items)
        _check(item, path, "name", _text, problems, rule=check_name)
        _check(item, path, "ip_address", _text, problems, rule=check_address)
        _check(item, path, "port", check_port, problems)
        _check(item, path, "ssh_host", _text, problems, rule=check_ssh_host)
        _check(item, path, "log_path", _text, problems, rule=check_path)
        _check(item, path, "config_dir", _text, problems, rule=check_path, directory=True)
        if "enabled" in item and not isinstance(item["enabled"], bool):
            problems.add(f"{path}.enabled", "must be true or false")
        if len(problems.items) == before:
            good_servers.append((index, item))
    for index, item in enumerate(routers):
        path = f"data_routers[{index}]"
        item = _fields(item, path, ROUTER_FIELDS, problems)
        if item is None:
            continue
        before = len(problems.items)
        _check(item, path, "name", _text, problems, rule=check_name)
        _check(item, path, "ip_address", _text, problems, rule=check_address)
        _check(item, path, "port", check_port, problems)
        _check(item, path, "connection_type", check_connection_type, problems)
        _check(item, path, "ssh_host", _text, problems, rule=check_ssh_host)
        _check(item, path, "working_dir", _text, problems, rule=check_path, directory=True)
        _check(item, path, "log_path", _text, problems, rule=check_path)
        if len(problems.items) == before:
            good_routers.append((index, item))

    _unique([(i, s["name"]) for i, s in good_servers], "ecc_servers", "the ECC server",
            problems)
    _unique([(i, r["name"]) for i, r in good_routers], "data_routers", "the data router",
            problems)
    _same_endpoint(good_servers, "ecc_servers", "ECC server", problems)
    _same_endpoint(good_routers, "data_routers", "data router", problems)
    servers_at = {(normal_address(s["ip_address"]), s["port"]): i for i, s in good_servers}
    for index, item in good_routers:
        at = servers_at.get((normal_address(item["ip_address"]), item["port"]))
        if at is not None:
            problems.add(f"data_routers[{index}].port", f"{item['ip_address']}:{item['port']} "
                         f"is already the address of the ECC server ecc_servers[{at}]")

    server_names = {s["name"] for _, s in good_servers}
    all_server_names = {s.get("name") for s in servers if isinstance(s, dict)}
    all_router_names = {r.get("name") for r in routers if isinstance(r, dict)}
    senders: dict[str, tuple[int, str]] = {}
    for index, item in enumerate(sources):
        path = f"data_sources[{index}]"
        item = _fields(item, path, SOURCE_FIELDS, problems)
        if item is None:
            continue
        _check(item, path, "name", _text, problems, rule=check_source_name)
        server = item.get("ecc_server")
        if "ecc_server" in item:
            if not isinstance(server, str):
                problems.add(f"{path}.ecc_server", "must be the name of an ECC server")
            elif server not in all_server_names:
                problems.add(f"{path}.ecc_server", f"there is no ECC server named "
                             f"{server[:80]!r} in ecc_servers")
        router = item.get("data_router")
        if "data_router" in item and router is not None:
            if not isinstance(router, str):
                problems.add(f"{path}.data_router", "must be the name of a data router, "
                             "or null")
            elif router not in all_router_names:
                problems.add(f"{path}.data_router", f"there is no data router named "
                             f"{router[:80]!r} in data_routers")
        name = item.get("name")
        if isinstance(name, str) and not check_source_name(name) and server in server_names:
            if name in senders:
                other_index, other_server = senders[name]
                where = ("on the same ECC server: the real server keeps only the first "
                         "link of a sender" if other_server == server else
                         f"on {other_server!r}: a board has one sender id in the detector")
                problems.add(f"{path}.name", f"{name} is already linked by "
                             f"data_sources[{other_index}] {where}")
            else:
                senders[name] = (index, server)
    return problems.items


def parse(text: str | bytes) -> dict:
    """A valid document read from ``text``; raises :class:`InvalidSetup` naming every
    problem."""
    document = loads(text)
    problems = validate_document(document)
    if problems:
        raise InvalidSetup(problems)
    return document


def import_text(text: str | bytes) -> dict:
    """Check ``text`` completely, then replace the setup with it (see :func:`apply_setup`)."""
    return apply_setup(parse(text))


# Replacing the setup -------------------------------------------------------------------

@dataclass
class Summary:
    """What :func:`apply_setup` did, by kind: names created, updated and removed."""

    created: dict[str, list[str]] = field(default_factory=dict)
    updated: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)

    def text(self) -> str:
        parts = []
        for verb, table in (("created", self.created), ("updated", self.updated),
                            ("removed", self.removed)):
            counts = [f"{len(names)} {kind}" for kind, names in table.items() if names]
            if counts:
                parts.append(f"{verb} " + ", ".join(counts))
        return "; ".join(parts) or "nothing changed"


def _replace(model, wanted: list[dict], fields: tuple[str, ...], summary: Summary,
             kind: str) -> dict[str, object]:
    existing = {obj.name: obj for obj in model.objects.all()}
    keep = {item["name"] for item in wanted}
    removed = [name for name in existing if name not in keep]
    model.objects.filter(name__in=removed).delete()
    summary.removed[kind] = sorted(removed)
    summary.created[kind], summary.updated[kind] = [], []
    result = {}
    for item in wanted:
        values = {name: item[name] for name in fields if name != "name"}
        if "ip_address" in values:
            values["ip_address"] = normal_address(values["ip_address"])
        obj = existing.get(item["name"])
        if obj is None:
            obj = model(name=item["name"], **values)
            obj.save()
            summary.created[kind].append(obj.name)
        else:
            changed = [name for name, value in values.items() if getattr(obj, name) != value]
            if changed:
                for name in changed:
                    setattr(obj, name, values[name])
                obj.save(update_fields=changed)
                summary.updated[kind].append(obj.name)
        result[obj.name] = obj
    return result


def apply_setup(document: dict, *, check: bool = True) -> Summary:
    """Replace the whole setup by ``document`` in one transaction.

    Servers and routers are matched by name: kept ones are updated in place (their
    configuration sets, selection and history stay), the others created or removed.
    Raises :class:`InvalidSetup` for a document with problems and
    :class:`SetupRefused` when the setup cannot change now; either way nothing changed.
    """
    if check:
        problems = validate_document(document)
        if problems:
            raise InvalidSetup(problems)
    summary = Summary()
    with transaction.atomic():
        refusal = change_refusal()
        if refusal:
            raise SetupRefused(refusal)
        routers_in_use = {r.name for r in DataRouter.objects.all()} - {
            r["name"] for r in document["data_routers"]}
        waiting = (UnattributedData.objects.filter(router__name__in=routers_in_use, decision="")
                   .values_list("router__name", flat=True).distinct())
        if waiting:
            raise SetupRefused("unattributed files of " + ", ".join(sorted(waiting))
                               + " wait for a choice on the status page: decide first")
        # Sources first: a source changing server must not be removed with its old one.
        wanted_links = {(s["ecc_server"], s["name"], s["data_router"])
                        for s in document["data_sources"]}
        for source in DataSource.objects.select_related("ecc_server", "data_router"):
            link = (source.ecc_server.name, source.name,
                    source.data_router.name if source.data_router else None)
            if link not in wanted_links:
                source.delete()
                summary.removed.setdefault("data sources", []).append(source.name)
        servers = _replace(ECCServer, document["ecc_servers"], ECC_FIELDS, summary,
                           "ECC servers")
        routers = _replace(DataRouter, document["data_routers"], ROUTER_FIELDS, summary,
                           "data routers")
        existing = {(s.ecc_server.name, s.name,
                     s.data_router.name if s.data_router else None)
                    for s in DataSource.objects.select_related("ecc_server", "data_router")}
        created = []
        for item in document["data_sources"]:
            link = (item["ecc_server"], item["name"], item["data_router"])
            if link in existing:
                continue
            DataSource.objects.create(
                name=item["name"], ecc_server=servers[item["ecc_server"]],
                data_router=routers[item["data_router"]] if item["data_router"] else None)
            created.append(item["name"])
        summary.created["data sources"] = created
        summary.removed.setdefault("data sources", [])
    return summary


# Easy setup ------------------------------------------------------------------------------

@dataclass
class EasySetup:
    """What the easy setup form asks; :func:`easy_document` turns it into a setup."""

    cobos: int
    one_ecc_server: bool
    first_ecc_address: str
    ecc_port: int
    first_router_address: str
    router_port: int
    connection_type: str = "TCP"
    mutant: bool = False
    mutant_own_server: bool = False
    ssh_user: str = ""
    ecc_log_path: str = ""
    config_dir: str = ""
    router_working_dir: str = ""
    router_log_path: str = ""


def count_up(first: str, count: int) -> list[str]:
    """``count`` IPv4 addresses from ``first``, the last number counting up.

    Raises ValueError saying why when ``first`` is not IPv4 or the last number would
    pass 254.
    """
    try:
        address = ipaddress.IPv4Address(first)
    except ValueError:
        raise ValueError("must be an IPv4 address (e.g. 10.0.0.20): its last number "
                         "counts up") from None
    last = int(str(address).rsplit(".", 1)[1])
    if last + count - 1 > 254:
        raise ValueError(f"{count} addresses from {address} would pass .254 (the last "
                         f"would be .{last + count - 1})")
    return [str(address + i) for i in range(count)]


def _ssh(user: str, address: str) -> str:
    return f"{user}@{address}" if user else ""


def easy_document(plan: EasySetup) -> dict:
    """The setup document of ``plan`` (raises ValueError on addresses that overflow).

    One data router per board, named ``DataRouter0``… (the MuTAnT's ``DataRouterMutant``,
    after the CoBos'), at ``first_router_address`` counting up; the CoBos' ECC servers
    are named after their board (``CoBo[0]``…), or ``ECC`` when one serves all; the
    MuTAnT's own server ``Mutant`` takes the next ECC address, else its source
    ``Mutant[master]`` is on the first ECC server.
    """
    cobo_servers = 1 if plan.one_ecc_server else plan.cobos
    ecc_count = cobo_servers + (1 if plan.mutant and plan.mutant_own_server else 0)
    router_count = plan.cobos + (1 if plan.mutant else 0)
    ecc_addresses = count_up(plan.first_ecc_address, ecc_count)
    router_addresses = count_up(plan.first_router_address, router_count)

    def server(name: str, address: str) -> dict:
        return {"name": name, "ip_address": address, "port": plan.ecc_port,
                "ssh_host": _ssh(plan.ssh_user, address), "log_path": plan.ecc_log_path,
                "config_dir": plan.config_dir, "enabled": True}

    def router(name: str, address: str) -> dict:
        return {"name": name, "ip_address": address, "port": plan.router_port,
                "connection_type": plan.connection_type,
                "ssh_host": _ssh(plan.ssh_user, address),
                "working_dir": plan.router_working_dir, "log_path": plan.router_log_path}

    servers = ([server("ECC", ecc_addresses[0])] if plan.one_ecc_server else
               [server(f"CoBo[{n}]", ecc_addresses[n]) for n in range(plan.cobos)])
    routers = [router(f"DataRouter{n}", router_addresses[n]) for n in range(plan.cobos)]
    sources = [{"name": f"CoBo[{n}]", "ecc_server": servers[0 if plan.one_ecc_server else n]
                ["name"], "data_router": f"DataRouter{n}"} for n in range(plan.cobos)]
    if plan.mutant:
        routers.append(router("DataRouterMutant", router_addresses[-1]))
        if plan.mutant_own_server:
            servers.append(server("Mutant", ecc_addresses[-1]))
        sources.append({"name": "Mutant[master]",
                        "ecc_server": servers[-1]["name"] if plan.mutant_own_server
                        else servers[0]["name"], "data_router": "DataRouterMutant"})
    return {"version": VERSION, "ecc_servers": servers, "data_routers": routers,
            "data_sources": sources}


def compare(document: dict) -> dict[str, dict[str, list[str]]]:
    """What applying ``document`` would do, by kind: names added, changed, removed."""
    current = export_setup()
    result = {}
    for key, kind in (("ecc_servers", "ECC servers"), ("data_routers", "data routers")):
        now = {item["name"]: item for item in current[key]}
        then = {item["name"]: item for item in document[key]}
        result[kind] = {"added": [n for n in then if n not in now],
                        "changed": [n for n in then if n in now and now[n] != then[n]],
                        "removed": [n for n in now if n not in then]}
    return result
