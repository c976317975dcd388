"""The pure parts: name checks, the filing plan and script, /proc parsing, the public surface."""

import subprocess
import sys

import pytest

import attpcdaq.remote as remote
from attpcdaq.remote import FilingConflict, UnsafeName
from attpcdaq.remote.filing import MAX_ARG_BYTES, filing_script, plan_filing
from attpcdaq.remote.names import check_component, run_dir_name
from attpcdaq.remote.procs import ere_escape, parse_listening, socket_inode
from attpcdaq.remote.results import Entry


@pytest.mark.parametrize("name", ["e20009", "run 'A' \"B\"", "é実験 ✓", "a;rm -rf x",
                                  "$(touch pwned)", "a..b", "...", "x-", " lead"])
def test_names_people_type_are_accepted(name):
    assert check_component("h", "experiment name", name) == name


@pytest.mark.parametrize(("name", "why"), [("", "empty"), (".", "relative"), ("..", "relative"),
                                           ("a/b", "'/'"), ("/", "'/'"), ("a\0b", "NUL"),
                                           ("-rf", "option"), ("-", "option"),
                                           ("tab\there", "control"), (7, "string")])
def test_unsafe_names_are_refused_with_the_reason(name, why):
    with pytest.raises(UnsafeName, match=why) as caught:
        check_component("daq-mini-3", "experiment name", name)
    assert caught.value.host == "daq-mini-3" and isinstance(caught.value, ValueError)


def test_run_dir_name():
    assert run_dir_name("h", 0) == "run_0000"
    assert run_dir_name("h", 42) == "run_0042"
    assert run_dir_name("h", 12345) == "run_12345"
    for bad in (-1, True, 2.0, "3", None):
        with pytest.raises(UnsafeName):
            run_dir_name("h", bad)


def test_plan_sorts_files_into_move_duplicate_and_clash():
    sources = [Entry("a.graw", 1, True), Entry("b.graw", 2, True), Entry("c.graw", 3, True),
               Entry("d.txt", 4, True), Entry("e.graw", 5, False)]
    plan = plan_filing("h", "/w", "exp/run_0001", sources,
                       [Entry("b.graw", 2, True), Entry("z.graw", 9, True)], "*.graw")
    assert [f.name for f in plan.to_move] == ["a.graw", "c.graw"]
    assert [f.name for f in plan.duplicates] == ["b.graw"]
    assert [f.name for f in plan.already_there] == ["b.graw", "z.graw"]
    assert plan.destination == "/w/exp/run_0001"
    with pytest.raises(FilingConflict, match=r"'c.graw' \(3 bytes here, 4 bytes there\)"):
        plan_filing("h", "/w", "exp/run_0001", sources, [Entry("c.graw", 4, True)], "*.graw")


def test_script_batches_stay_under_the_argument_limit():
    sources = [Entry(f"CoBo_AsAd{i % 4}_2017-03-01T15:30:12.345_{i:05d}.graw", 0, True)
               for i in range(10_000)]
    script = filing_script(plan_filing("h", "/w", "e/run_0001", sources, [], "*.graw"))
    batches = [line for line in script.splitlines() if line.startswith("set -- ")]
    assert len(batches) > 5
    assert all(len(line.encode()) < MAX_ARG_BYTES + 100 for line in batches)
    assert sum(len(line.split()) - 2 for line in batches) == 10_000


def test_parse_listening_reads_only_listen_rows():
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode\n"
        "   0: 0100007F:B3B5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
        "        0 41235 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:9C40 0100007F:B3B5 01 00000000:00000000 00:00000000 00000000     0"
        "        0 41300 1 0000000000000000 20 4 30 10 -1\n"
        "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 777 1 0 100 0 0 10 0\n")
    assert parse_listening(table) == {41235: 46005, 777: 8080}
    assert socket_inode("socket:[41235]") == 41235
    assert socket_inode("/dev/null") is None and socket_inode(None) is None


def test_ere_escape_matches_literally():
    assert ere_escape("a.b*c") == r"a\.b\*c"
    assert ere_escape("dataRouter") == "dataRouter"


def test_public_surface():
    for name in remote.__all__:
        assert hasattr(remote, name), name
    assert issubclass(remote.FilingConflict, remote.RemoteFileError)
    assert issubclass(remote.RemoteFileNotFound, remote.RemoteError)
    assert issubclass(remote.UnsafeName, ValueError)


def test_no_django_import():
    code = ("import sys, attpcdaq.remote, attpcdaq.remote.testing\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'django']\n"
            "sys.exit(f'imports {bad}' if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
