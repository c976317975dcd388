"""``attpcdaq status|transition|start|stop|runs``: the run from a terminal or a script.

A client of a running server's JSON API (``attpcdaq serve`` or ``demo``), so it runs
anywhere that reaches the server, without Django or the database. The standard
library's HTTP client is enough for a few JSON requests, and keeps the command free of
another runtime dependency.

A command waits for its outcome (``/api/commands/ID`` until done or failed) unless
``--no-wait``; ``--timeout`` bounds the wait. Exit status: 0 done; 1 refused by the
server (the reason printed: 400, 403, 404, 409, 429, 503 with its reason) or the
command failed or did not finish within ``--timeout``; 2 the server cannot be reached,
answers something that is not the API, or does not accept the token (401), and for
wrong arguments.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

DEFAULT_URL = "http://127.0.0.1:8000/"
#: Seconds one HTTP request may take.
REQUEST_TIMEOUT = 10.0
#: Seconds between two looks at a command's outcome.
POLL_INTERVAL = 0.2
TARGETS = ("idle", "described", "prepared", "ready", "running", "paused", "reset")
RUNNING, PAUSED = "Running", "Paused"

DONE, REFUSED, UNREACHABLE = 0, 1, 2


class Refused(Exception):
    """The server said no, or the command failed: exit 1."""

    def __init__(self, message: str, body: object = None) -> None:
        super().__init__(message)
        self.body = body


class Unreachable(Exception):
    """No answer from the API, or not one it would give, or the token refused: exit 2."""


class Client:
    """The API of one server, authenticated with a token."""

    def __init__(self, url: str, token: str) -> None:
        self.base = url if url.endswith("/") else url + "/"
        self.token = token

    def request(self, method: str, path: str, body: dict | None = None, *,
                raw: bool = False):
        """The decoded JSON answer (or bytes with ``raw``); Refused or Unreachable."""
        url = urllib.parse.urljoin(self.base, path)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as answer:  # noqa: S310
                content = answer.read()
        except urllib.error.HTTPError as error:
            raise _refusal(url, error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise Unreachable(f"cannot reach {url}: {reason}") from None
        if raw:
            return content
        try:
            return json.loads(content)
        except ValueError:
            raise Unreachable(f"{url} did not answer JSON: is {self.base} an attpcdaq "
                              "server?") from None

    def get(self, path: str, **query):
        query = {k: v for k, v in query.items() if v not in (None, "", [], ())}
        return self.request("GET", path + ("?" + urllib.parse.urlencode(query, doseq=True)
                                           if query else ""))


def _refusal(url: str, error: urllib.error.HTTPError) -> Exception:
    try:
        body = json.loads(error.read() or b"null")
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if error.code == 401:
        return Unreachable("the server refused the token (401): give a valid one with "
                           "--token or ATTPCDAQ_TOKEN (attpcdaq token USER makes one)")
    if detail is None or (error.code >= 500 and error.code != 503):
        # Not the API's own refusal: a proxy, another program, a crash.
        return Unreachable(f"{url} answered HTTP {error.code} {error.reason}")
    return Refused(f"refused ({error.code}): {detail}", body)


# What is printed --------------------------------------------------------------------------


def _emit(args, data, human: Callable[[object], str]) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else human(data))


def _status_text(status: dict) -> str:
    run = status.get("run")
    lines = [f"{status.get('experiment') or 'no active experiment'}: "
             f"{status.get('overall_state_name', '?')}"]
    if not status.get("engine_alive"):
        lines.append(f"engine: NOT RUNNING {status.get('engine_message', '')}".rstrip())
    if run:
        where = ("open" if run["running"] else "filed" if run["filed"] else "not filed yet")
        title = f" “{run['title']}”" if run.get("title") else ""
        lines.append(f"run {run['number']}{title}: {run['status']}, {where}")
    else:
        lines.append("no run yet")
    rows = [("ECC server", "state", "online", "configuration", "note")]
    for server in status.get("ecc_servers", []):
        state = server["state_name"] + (f" → {server['transition_name']}"
                                        if server["transitioning"] else "")
        note = ("excluded: " + server["excluded_reason"] if server["excluded"]
                else "disabled" if not server["enabled"] else server["last_error"])
        rows.append((server["name"], state, "yes" if server["online"] else "NO",
                     server["selected_config"] or "-", note.splitlines()[0] if note else ""))
    lines += _table(rows)
    rows = [("data router", "online", "clean", "rate [B/s]", "note")]
    for router in status.get("data_routers", []):
        rows.append((router["name"], "yes" if router["online"] else "NO",
                     "yes" if router["clean"] else "no", f"{router['data_rate']:.0f}",
                     "excluded: " + router["excluded_reason"] if router["excluded"] else ""))
    lines += _table(rows)
    if status.get("alarm_count"):
        lines.append(f"{status['alarm_count']} alarm(s), newest first:")
        lines += [f"  {a['time']} {a['source']}: {a['message']}" for a in status["alarms"][:5]]
    if status.get("unconfigured_servers"):
        lines.append("no configuration selected: " + ", ".join(status["unconfigured_servers"]))
    return "\n".join(lines)


def _table(rows: list[tuple]) -> list[str]:
    if len(rows) == 1:
        return []
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [""] + ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                   for row in rows]


def _command_text(command: dict) -> str:
    text = f"command {command['id']} ({command['description']}): {command['status']}"
    if command.get("error"):
        text += f"\n{command['error']}"
    return text


# The subcommands --------------------------------------------------------------------------


def _status(client: Client, args) -> int:
    _emit(args, client.get("api/status"), _status_text)
    return DONE


def _queue(client: Client, args, body: dict, done: str = "") -> int:
    """Queue a transition, wait for its outcome and print it (with ``done``, a line
    about the run once it is done: "started", "stopped")."""
    accepted = client.request("POST", "api/transition", body)
    number = accepted["command"]
    if args.no_wait:
        _emit(args, accepted, lambda a: f"command {a['command']} queued")
        return DONE
    deadline = time.monotonic() + args.timeout
    while True:
        command = client.get(f"api/commands/{number}")
        if command["status"] in ("done", "failed"):
            break
        if time.monotonic() >= deadline:
            _emit(args, command, _command_text)
            print(f"attpcdaq: command {number} is still {command['status']} after "
                  f"{args.timeout:g} s (it goes on: see attpcdaq status)", file=sys.stderr)
            return REFUSED
        time.sleep(POLL_INTERVAL)
    if command["status"] == "failed":
        if args.json:
            _emit(args, command, _command_text)
        raise Refused(f"command {number} ({command['description']}) failed: "
                      f"{command['error'] or 'no reason given'}", command)
    _emit(args, command, _command_text)
    if done and not args.json:
        run = client.get("api/status").get("run")
        if run:
            title = f" “{run['title']}”" if run.get("title") else ""
            print(f"run {run['number']}{title} {done}")
    return DONE


def _states(client: Client) -> tuple[dict, set[str]]:
    status = client.get("api/status")
    return status, {s["state_name"] for s in status["ecc_servers"]
                    if s["enabled"] and not s["excluded"]}


def _transition(client: Client, args) -> int:
    body = {"target": args.target}
    if args.confirm_drift:
        body["confirm_drift"] = True
    return _queue(client, args, body)


def _start(client: Client, args) -> int:
    _, states = _states(client)
    if states == {PAUSED}:
        # The API would resume the run: a Start is not that.
        raise Refused("refused: the run is paused; resume it with "
                      "'attpcdaq transition running', or stop it first")
    body = {"target": "running"}
    for field in ("title", "run_class", "comment", "limit_seconds", "limit_events",
                  "limit_bytes"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    if args.auto_restart:
        body["auto_restart"] = True
    if args.confirm_drift:
        body["confirm_drift"] = True
    return _queue(client, args, body, "started")


def _stop(client: Client, args) -> int:
    status, states = _states(client)
    run = status.get("run")
    if not (run and run["running"]) and not states & {RUNNING, PAUSED}:
        # "ready" would walk an idle system up to Ready: not what a Stop means.
        raise Refused("refused: no run is open and no board is Running or Paused: "
                      "nothing to stop")
    return _queue(client, args, {"target": "ready"}, "stopped")


def _runs(client: Client, args) -> int:
    pages, query = [], {"experiment": args.experiment, "class": args.run_class,
                        "from": args.from_, "to": args.to, "limit": 1000}
    while True:
        page = client.get("api/runs", **query)
        pages.append(page)
        if not page.get("next") or len(pages) >= page["pages"]:
            break
        query["page"] = page["page"] + 1
    runs = [run for page in pages for run in page["runs"]]
    if args.csv:
        _write_csv(runs)
    elif args.json:
        print(json.dumps({"experiment": pages[0]["experiment"], "count": len(runs),
                          "runs": runs}, indent=2, ensure_ascii=False))
    else:
        rows = [("run", "status", "class", "title", "start", "duration [s]", "events",
                 "bytes", "")]
        for run in runs:
            rows.append((run["number"], run["status"], run["class"] or "", run["title"],
                         (run["start"] or "")[:19].replace("T", " "),
                         _cell(run["duration_seconds"]), _cell(run["events"]),
                         _cell(run["bytes"]), "incomplete" if run["incomplete"] else ""))
        print(f"{pages[0]['experiment']}: {len(runs)} run(s)")
        print("\n".join(_table(rows)[1:]))
    return DONE


#: The columns of ``runs --csv`` (then one per measurement, by name).
CSV_COLUMNS = ("number", "status", "class", "title", "comment", "start", "stop",
               "duration_seconds", "live_time_seconds", "events", "bytes", "incomplete",
               "problems")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(map(str, value))
    return str(value)


def _write_csv(runs: list[dict]) -> None:
    """The runs as CSV on standard output, values as the API gives them (for scripts: the
    run sheet's download on the web is the one made for spreadsheets)."""
    measured: list[str] = []
    for run in runs:
        measured += [name for name in run.get("measurements", {}) if name not in measured]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *measured])
    for run in runs:
        writer.writerow([_cell(run.get(c)) for c in CSV_COLUMNS] +
                        [_cell(run.get("measurements", {}).get(m)) for m in measured])


# The parser -------------------------------------------------------------------------------


def _connection_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("server")
    group.add_argument("--url", default=os.environ.get("ATTPCDAQ_URL", DEFAULT_URL),
                       help=f"the server (ATTPCDAQ_URL, else {DEFAULT_URL})")
    group.add_argument("--token", default=None,
                       help="API token (else ATTPCDAQ_TOKEN; attpcdaq token USER makes one)")
    group.add_argument("--json", action="store_true", help="print the API's JSON answer")
    return options


def _waiting_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("waiting")
    group.add_argument("--no-wait", action="store_true",
                       help="return once the command is queued")
    group.add_argument("--timeout", type=float, default=300.0,
                       help="seconds to wait for the outcome (300); exit 1 after")
    group.add_argument("--confirm-drift", action="store_true",
                       help="start although configuration files changed since Configure")
    return options


def add_run_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``status``, ``transition``, ``start``, ``stop`` and ``runs``."""
    connection, waiting = _connection_options(), _waiting_options()
    epilog = ("exit status: 0 done, 1 refused or failed (the reason printed), 2 server "
              "unreachable, token refused or wrong arguments")

    def add(name: str, help_: str, run, *, waits: bool) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_, description=help_, epilog=epilog,
                                     parents=[connection, *([waiting] if waits else [])])
        parser.set_defaults(run=lambda args: main(args, run))
        return parser

    add("status", "the state of the DAQ, its run, servers and routers", _status, waits=False)
    transition = add("transition", "take every enabled server to a state", _transition,
                     waits=True)
    transition.add_argument("target", choices=TARGETS,
                            help="the state ('running' starts or resumes, 'ready' from "
                            "Running stops, 'reset' is one step back)")
    start = add("start", "start a run (every board Ready)", _start, waits=True)
    start.add_argument("--title", help="the run's title")
    start.add_argument("--class", dest="run_class", metavar="CLASS",
                       help="its run class (Testing, Production, Beam, ...)")
    start.add_argument("--comment", help="a comment")
    start.add_argument("--limit-seconds", type=float, help="stop after this live time")
    start.add_argument("--limit-events", type=int, help="stop after this many events")
    start.add_argument("--limit-bytes", type=int, help="stop after this much data")
    start.add_argument("--auto-restart", action="store_true",
                       help="after a limit stopped it, start the next run alike")
    add("stop", "stop the open run", _stop, waits=True)
    runs = add("runs", "the run sheet of the active experiment", _runs, waits=False)
    runs.add_argument("--csv", action="store_true", help="as CSV, one row per run")
    runs.add_argument("--experiment", help="another experiment than the active one")
    runs.add_argument("--class", dest="run_class", action="append", metavar="CLASS",
                      help="only runs of this class (repeatable)")
    runs.add_argument("--from", dest="from_", type=int, metavar="N", help="from run N")
    runs.add_argument("--to", type=int, metavar="N", help="to run N")


def main(args: argparse.Namespace, run: Callable[[Client, argparse.Namespace], int]) -> int:
    """Run one subcommand; print why it did not work and return the exit status."""
    token = args.token or os.environ.get("ATTPCDAQ_TOKEN", "")
    if not token:
        print("attpcdaq: no API token: give --token or set ATTPCDAQ_TOKEN "
              "(attpcdaq token USER makes one)", file=sys.stderr)
        return UNREACHABLE
    try:
        return run(Client(args.url, token), args)
    except Refused as refusal:
        if args.json and not (isinstance(refusal.body, dict) and "id" in refusal.body):
            # The API's refusal (a failed command was printed already), or ours.
            print(json.dumps(refusal.body or {"detail": str(refusal)}, indent=2,
                             ensure_ascii=False))
        print(f"attpcdaq: {refusal}", file=sys.stderr)
        return REFUSED
    except Unreachable as error:
        print(f"attpcdaq: {error}", file=sys.stderr)
        return UNREACHABLE
