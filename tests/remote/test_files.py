"""list_files and file_run through both transports: names, sizes, safety, idempotency."""

import os
from pathlib import Path

import pytest

from attpcdaq.remote import (
    FileInfo,
    FilingConflict,
    RemoteError,
    RemoteFileError,
    RemoteFileNotFound,
    UnsafeName,
)
from attpcdaq.remote.filing import filing_script, plan_filing, unmoved
from attpcdaq.remote.names import run_dir

RUN = {"CoBo_AsAd0_2017-03-01T15:30:12.345_0000.graw": 1000,
       "CoBo_AsAd1_2017-03-01T15:30:12.345_0000.graw": 2000,
       "CoBo_AsAd2_2017-03-01T15:30:12.345_0000.graw": 0,
       "CoBo_AsAd3_2017-03-01T15:30:12.345_0001.graw": 4096}

HOSTILE = ["run 'A' \"B\"", "é実験 ✓", "a;rm -rf x", "$(touch pwned)", "`touch pwned`",
           "x' && touch pwned && '", "a\\b", "*", "~root", "..."]


def infos(files: dict[str, int]) -> list[FileInfo]:
    return sorted(FileInfo(n, s) for n, s in files.items())


# ---------------------------------------------------------------- list_files

async def test_list_files_regular_matching_only(host, tmp_path, make_files):
    make_files(tmp_path, {"a.graw": 3, "b.graw": 0, "c.txt": 5, "-dash.graw": 7})
    (tmp_path / "dir.graw").mkdir()
    (tmp_path / "dir.graw" / "inside.graw").write_bytes(b"x")
    (tmp_path / "link.graw").symlink_to(tmp_path / "a.graw")
    assert await host.list_files(str(tmp_path)) == infos(
        {"-dash.graw": 7, "a.graw": 3, "b.graw": 0})
    assert FileInfo("c.txt", 5) in await host.list_files(str(tmp_path), "*")


async def test_list_files_missing_directory(host, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(RemoteFileNotFound) as caught:
        await host.list_files(str(missing))
    assert str(missing) in str(caught.value) and host.name in str(caught.value)


# ------------------------------------------------------------------ file_run

async def test_file_run_moves_the_run(host, tmp_path, make_files, snapshot):
    make_files(tmp_path, {**RUN, "notes.txt": 9})
    result = await host.file_run(str(tmp_path), "e20009", 7)
    dest = tmp_path / "e20009" / "run_0007"
    assert result.destination == str(dest)
    assert list(result.moved) == infos(RUN) and result.already_there == ()
    assert result.total_bytes == sum(RUN.values())
    expected = {"notes.txt": 9, "e20009": "dir", "e20009/run_0007": "dir"}
    expected.update({f"e20009/run_0007/{n}": s for n, s in RUN.items()})
    assert snapshot(tmp_path) == expected


async def test_file_run_run_number_padding(host, tmp_path, make_files):
    make_files(tmp_path, {"a.graw": 1})
    await host.file_run(str(tmp_path), "exp", 12345)
    assert (tmp_path / "exp" / "run_12345" / "a.graw").is_file()


@pytest.mark.parametrize("experiment", HOSTILE)
async def test_file_run_hostile_experiment_names(host, tmp_path, make_files, snapshot,
                                                 experiment, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    make_files(work, RUN)
    (work / "x").mkdir()  # what "rm -rf x" would delete
    (work / "x" / "keep").write_bytes(b"k")
    monkeypatch.chdir(tmp_path)  # where a stray "touch pwned" of the local shell would land
    home_pwned = Path.home() / "pwned"
    assert not home_pwned.exists()
    result = await host.file_run(str(work), experiment, 1)
    expected = {"x": "dir", "x/keep": 1, experiment: "dir", f"{experiment}/run_0001": "dir"}
    expected.update({f"{experiment}/run_0001/{n}": s for n, s in RUN.items()})
    assert snapshot(work) == expected
    assert result.destination == os.path.join(work, experiment, "run_0001")
    assert not home_pwned.exists() and not (tmp_path / "pwned").exists()


async def test_file_run_hostile_file_names(host, tmp_path, make_files, snapshot):
    files = {"-rf.graw": 1, "a b'c\"d.graw": 2, "$(touch pwned).graw": 3, "é✓.graw": 4,
             "new\nline.graw": 5, "--.graw": 6}
    make_files(tmp_path, files)
    result = await host.file_run(str(tmp_path), "exp", 2)
    assert list(result.moved) == infos(files)
    assert snapshot(tmp_path) == {"exp": "dir", "exp/run_0002": "dir",
                                  **{f"exp/run_0002/{n}": s for n, s in files.items()}}


@pytest.mark.parametrize("experiment", ["..", ".", "/", "a/b", "../up", "", "-rf", "a\0b",
                                        "line\nbreak", 42, None])
async def test_file_run_unsafe_names_change_nothing(host, tmp_path, make_files, snapshot,
                                                    experiment):
    make_files(tmp_path, RUN)
    before = snapshot(tmp_path.parent)
    with pytest.raises(UnsafeName) as caught:
        await host.file_run(str(tmp_path), experiment, 1)
    assert host.name in str(caught.value)
    assert snapshot(tmp_path.parent) == before


@pytest.mark.parametrize("run_number", [-1, True, 1.5, "7"])
async def test_file_run_bad_run_numbers(host, tmp_path, make_files, snapshot, run_number):
    make_files(tmp_path, RUN)
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeName):
        await host.file_run(str(tmp_path), "exp", run_number)
    assert snapshot(tmp_path) == before


async def test_file_run_resumes_after_a_crash(host, tmp_path, make_files, snapshot):
    files = {f"CoBo_AsAd{i % 4}_f{i:03d}.graw": 100 + i for i in range(20)}
    make_files(tmp_path, files)
    dest = tmp_path / "exp" / "run_0003"
    dest.mkdir(parents=True)
    half = sorted(files)[:10]
    for name in half:  # the first call died after moving these
        os.rename(tmp_path / name, dest / name)
    result = await host.file_run(str(tmp_path), "exp", 3)
    assert [f.name for f in result.moved] == sorted(files)[10:]
    assert [f.name for f in result.already_there] == half
    assert list(result.files) == infos(files)
    assert snapshot(tmp_path) == {"exp": "dir", "exp/run_0003": "dir",
                                  **{f"exp/run_0003/{n}": s for n, s in files.items()}}
    again = await host.file_run(str(tmp_path), "exp", 3)
    assert again.moved == () and list(again.already_there) == infos(files)
    assert snapshot(tmp_path) == {"exp": "dir", "exp/run_0003": "dir",
                                  **{f"exp/run_0003/{n}": s for n, s in files.items()}}


async def test_file_run_identical_copy_in_both_places_kept_once(host, tmp_path, make_files,
                                                                snapshot):
    make_files(tmp_path, RUN)
    dest = tmp_path / "exp" / "run_0001"
    dest.mkdir(parents=True)
    name = sorted(RUN)[1]
    (dest / name).write_bytes((tmp_path / name).read_bytes())  # a copy that crashed pre-unlink
    result = await host.file_run(str(tmp_path), "exp", 1)
    assert [f.name for f in result.duplicates_removed] == [name]
    assert FileInfo(name, RUN[name]) in result.already_there
    assert list(result.files) == infos(RUN)
    assert snapshot(tmp_path) == {"exp": "dir", "exp/run_0001": "dir",
                                  **{f"exp/run_0001/{n}": s for n, s in RUN.items()}}


async def test_file_run_same_size_other_contents_changes_nothing(host, tmp_path, make_files,
                                                                 snapshot):
    make_files(tmp_path, RUN)
    dest = tmp_path / "exp" / "run_0001"
    dest.mkdir(parents=True)
    name = sorted(RUN)[1]
    (dest / name).write_bytes(b"Z" * RUN[name])
    before = snapshot(tmp_path)
    with pytest.raises(FilingConflict, match="other contents") as caught:
        await host.file_run(str(tmp_path), "exp", 1)
    assert name in str(caught.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["bigger", "directory"])
async def test_file_run_clash_changes_nothing(host, tmp_path, make_files, snapshot, kind):
    make_files(tmp_path, RUN)
    dest = tmp_path / "exp" / "run_0001"
    dest.mkdir(parents=True)
    name = sorted(RUN)[2]
    if kind == "bigger":
        (dest / name).write_bytes(b"Q" * (RUN[name] + 1))
    else:
        (dest / name).mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(FilingConflict) as caught:
        await host.file_run(str(tmp_path), "exp", 1)
    assert name in str(caught.value) and host.name in str(caught.value)
    assert snapshot(tmp_path) == before


async def test_file_run_nothing_to_file(host, tmp_path, make_files, snapshot):
    make_files(tmp_path, {"notes.txt": 3})
    result = await host.file_run(str(tmp_path), "exp", 1)
    assert result.moved == () and result.already_there == () and result.files == ()
    assert snapshot(tmp_path) == {"notes.txt": 3}


async def test_file_run_missing_directory(host, tmp_path):
    with pytest.raises(RemoteFileNotFound, match="nowhere"):
        await host.file_run(str(tmp_path / "nowhere"), "exp", 1)


async def test_file_run_many_files_in_batches(host, tmp_path, snapshot):
    # ~130 KB of names: more than one mv call (64 KiB each), and more than the
    # 128 KiB a single command-line argument may hold.
    names = [f"CoBo_AsAd{i % 4}_2017-03-01T15:30:12.345_{i:04d}.graw" for i in range(3000)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    result = await host.file_run(str(tmp_path), "exp", 9)
    assert len(result.moved) == 3000
    assert sorted(os.listdir(tmp_path / "exp" / "run_0009")) == sorted(names)
    assert os.listdir(tmp_path) == ["exp"]


async def test_file_run_other_pattern(host, tmp_path, make_files, snapshot):
    make_files(tmp_path, {"a.graw": 1, "b.dat": 2})
    result = await host.file_run(str(tmp_path), "exp", 1, pattern="*.dat")
    assert list(result.moved) == [FileInfo("b.dat", 2)]
    assert snapshot(tmp_path) == {"a.graw": 1, "exp": "dir", "exp/run_0001": "dir",
                                  "exp/run_0001/b.dat": 2}


async def test_file_run_errors_are_remote_errors(host, tmp_path, make_files):
    make_files(tmp_path, RUN)
    (tmp_path / "exp").write_bytes(b"a file where the experiment directory should be")
    with pytest.raises(RemoteError) as caught:
        await host.file_run(str(tmp_path), "exp", 1)
    assert host.name in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*RUN, "exp"])


async def test_a_file_that_appears_in_the_run_directory_after_the_plan_is_kept(
        host, tmp_path, make_files, monkeypatch):
    # The race the script guards against: between the plan (run directory empty) and
    # the move, a file of the same name appears there. It must not be overwritten, the
    # working directory's file must stay where it is, and the filing must fail naming
    # it. MAX_ARG_BYTES small: the file is in the first of several batches, and every
    # other file, in every batch, is filed.
    monkeypatch.setattr("attpcdaq.remote.filing.MAX_ARG_BYTES", 200)
    files = {f"CoBo_AsAd{i % 4}_f{i:03d}.graw": 100 + i for i in range(30)}
    files["a file\nwith a newline.graw"] = 7
    make_files(tmp_path, files)
    relative, destination = run_dir(host.name, str(tmp_path), "exp", 4, ())
    dest = tmp_path / "exp" / "run_0004"
    assert destination == str(dest)
    plan = plan_filing(host.name, str(tmp_path), relative,
                       await host._entries(str(tmp_path)), [], "*.graw")
    late = sorted(files)[1]
    dest.mkdir(parents=True)
    (dest / late).write_bytes(b"written meanwhile")
    done = await host._run(["sh", "-s"], filing_script(plan).encode())
    assert done.exit_status == 0
    error = unmoved(host.name, plan, done.stderr)
    assert isinstance(error, RemoteFileError)
    assert f"{tmp_path / late}: was not moved" in str(error) and "appeared" in str(error)
    assert (dest / late).read_bytes() == b"written meanwhile"
    assert (tmp_path / late).stat().st_size == files[late]
    # Nothing lost: every file is in one of the two places, the late one in both.
    left = {p.name for p in tmp_path.iterdir() if p.is_file()}
    filed = {p.name for p in dest.iterdir()}
    assert left | filed == set(files) and left & filed == {late}
    # Hidden files and a file named like a pattern are seen as left too.
    for name in (".hidden.graw", "*"):
        (tmp_path / name).write_bytes(b"x")
        plan = plan_filing(host.name, str(tmp_path), relative,
                           await host._entries(str(tmp_path)), [], name)
        (dest / name).write_bytes(b"there first")
        done = await host._run(["sh", "-s"], filing_script(plan).encode())
        assert f"{tmp_path / name}: was not moved" in str(unmoved(host.name, plan, done.stderr))
