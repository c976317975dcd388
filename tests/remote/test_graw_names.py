"""Data routers' file names: the current form, the older one without the CoBo, the MuTAnT's."""

import pytest

from attpcdaq.remote import LocalHost
from attpcdaq.remote.filing import plan_filing
from attpcdaq.remote.names import GrawName, is_graw_name, parse_graw_name
from attpcdaq.remote.results import Entry

CURRENT = "CoBo0_AsAd0_2021-03-01T15:30:12.345_0000.graw"
OLDER = "CoBo_AsAd0_2017-10-08T02:11:06.485_0000.graw"
MUTANT = "MuTanT_2021-03-01T15:30:12.350_0003.graw"


@pytest.mark.parametrize(("name", "expected"), [
    (CURRENT, GrawName(0, 0, "2021-03-01T15:30:12.345", 0)),
    ("CoBo10_AsAd3_1999-12-31T23:59:59.999_0042.graw",
     GrawName(10, 3, "1999-12-31T23:59:59.999", 42)),
    (OLDER, GrawName(None, 0, "2017-10-08T02:11:06.485", 0)),
    ("CoBo_AsAd2_2015-12-03T05:47:43.571_12345.graw",  # past 9999 files of a set
     GrawName(None, 2, "2015-12-03T05:47:43.571", 12345)),
    (MUTANT, GrawName(None, None, "2021-03-01T15:30:12.350", 3, mutant=True)),
])
def test_both_forms_and_the_mutant_are_read(name, expected):
    assert parse_graw_name(name) == expected
    assert is_graw_name(name)
    assert parse_graw_name(name).older_form == (name.startswith("CoBo_"))


def test_files_of_one_set_share_all_but_the_number():
    first = parse_graw_name("CoBo1_AsAd2_2021-03-01T15:30:12.345_0000.graw")
    second = parse_graw_name("CoBo1_AsAd2_2021-03-01T15:30:12.345_0001.graw")
    older = parse_graw_name("CoBo_AsAd2_2021-03-01T15:30:12.345_0001.graw")
    other_cobo = parse_graw_name("CoBo2_AsAd2_2021-03-01T15:30:12.345_0000.graw")
    assert first.file_set == second.file_set
    assert len({first.file_set, older.file_set, other_cobo.file_set}) == 3


@pytest.mark.parametrize("name", [
    "", "a.graw", "CoBo0_AsAd0_2021-03-01T15:30:12.345_0000.graw.part",
    "CoBo0_AsAd0_2021-03-01T15:30:12.345_000.graw",  # three digits
    "CoBo0_AsAd0_2021-03-01T15:30:12_0000.graw",  # no milliseconds
    "CoBo0_AsAd0_2021-03-01 15:30:12.345_0000.graw",
    "CoBoX_AsAd0_2021-03-01T15:30:12.345_0000.graw",
    "CoBo0AsAd0_2021-03-01T15:30:12.345_0000.graw",
    "Cobo0_AsAd0_2021-03-01T15:30:12.345_0000.graw",
    "MuTanT_AsAd0_2021-03-01T15:30:12.345_0000.GRAW",
    "CoBo٣_AsAd0_2021-03-01T15:30:12.345_0000.graw",  # a non-ASCII digit
    "CoBo_AsAd0_stray_0000.graw", None,
])
def test_other_names_are_not_data_router_files(name):
    assert parse_graw_name(name) is None
    assert not is_graw_name(name)


def test_filing_takes_both_forms_and_the_mutant():
    names = [CURRENT, OLDER, MUTANT]
    plan = plan_filing("h", "/w", "exp/run_0001", [Entry(n, 10, True) for n in names], [],
                       "*.graw")
    assert sorted(f.name for f in plan.to_move) == sorted(names)


async def test_a_router_directory_lists_both_forms(tmp_path):
    for name in (CURRENT, OLDER, MUTANT, "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    listed = [f.name for f in await LocalHost().list_files(str(tmp_path))]
    assert listed == sorted([CURRENT, OLDER, MUTANT])
    assert all(is_graw_name(name) for name in listed)
