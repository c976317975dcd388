"""backup_configs through both transports: copies land on this machine, idempotently.

Also which files a configuration set stands for (``.xcfg``, else ``.xml``) and
their digests, as the engine's drift guard reads them.
"""

import hashlib
import os

import pytest

from attpcdaq.remote import (
    FileInfo,
    FilingConflict,
    RemoteFileError,
    RemoteFileNotFound,
    UnsafeName,
)
from attpcdaq.remote.backup import choose_config_files, config_digests, text_digest

CONFIGS = {"describe-cobo0.xcfg": b"<Setup>describe</Setup>\n",
           "describe-mutant.xml": b"<Setup>mutant \xc3\xa9</Setup>\n",
           "configure-experiment.xcfg": b"<Setup>configure</Setup>\n" * 100}


@pytest.fixture
def config_dir(tmp_path):
    directory = tmp_path / "ecc config"
    directory.mkdir()
    for name, data in CONFIGS.items():
        (directory / name).write_bytes(data)
    (directory / "configure-other.xcfg").write_bytes(b"not selected")
    return directory


async def test_backup_copies_the_files_given(host, config_dir, tmp_path):
    root = tmp_path / "backups"
    result = await host.backup_configs(str(config_dir), list(CONFIGS), str(root), "e20009", 4)
    target = root / "e20009" / "run_0004"
    assert result.destination == str(target)
    assert list(result.copied) == sorted(FileInfo(n, len(d)) for n, d in CONFIGS.items())
    assert sorted(p.name for p in target.iterdir()) == sorted(CONFIGS)
    for name, data in CONFIGS.items():
        assert (target / name).read_bytes() == data


async def test_backup_twice_is_harmless(host, config_dir, tmp_path):
    root = tmp_path / "backups"
    await host.backup_configs(str(config_dir), list(CONFIGS), str(root), "exp", 4)
    again = await host.backup_configs(str(config_dir), list(CONFIGS), str(root), "exp", 4)
    assert again.copied == () and [f.name for f in again.unchanged] == sorted(CONFIGS)
    assert sorted(p.name for p in (root / "exp" / "run_0004").iterdir()) == sorted(CONFIGS)


async def test_backup_missing_source_named_and_nothing_written(host, config_dir, tmp_path):
    root = tmp_path / "backups"
    names = [*CONFIGS, "describe-cobo9.xcfg"]
    with pytest.raises(RemoteFileNotFound, match=r"describe-cobo9\.xcfg") as caught:
        await host.backup_configs(str(config_dir), names, str(root), "exp", 4)
    assert host.name in str(caught.value)
    assert not root.exists()


async def test_backup_missing_config_directory(host, tmp_path):
    with pytest.raises(RemoteFileNotFound, match="no-such-dir"):
        await host.backup_configs(str(tmp_path / "no-such-dir"), list(CONFIGS),
                                  str(tmp_path / "b"), "exp", 1)


async def test_backup_never_overwrites_another_backup(host, config_dir, tmp_path):
    target = tmp_path / "backups" / "exp" / "run_0004"
    target.mkdir(parents=True)
    (target / "describe-cobo0.xcfg").write_bytes(b"the config really used")
    with pytest.raises(FilingConflict, match=r"describe-cobo0\.xcfg"):
        await host.backup_configs(str(config_dir), list(CONFIGS), str(tmp_path / "backups"),
                                  "exp", 4)
    assert [p.name for p in target.iterdir()] == ["describe-cobo0.xcfg"]  # no temporaries left
    assert (target / "describe-cobo0.xcfg").read_bytes() == b"the config really used"


@pytest.mark.parametrize("experiment", ["run 'A' \"B\"", "é実験 ✓", "$(touch pwned)"])
async def test_backup_hostile_experiment_names(host, config_dir, tmp_path, experiment):
    root = tmp_path / "backups"
    await host.backup_configs(str(config_dir), list(CONFIGS), str(root), experiment, 1)
    assert sorted(p.name for p in (root / experiment / "run_0001").iterdir()) == sorted(CONFIGS)
    assert [p.name for p in root.iterdir()] == [experiment]


@pytest.mark.parametrize(("names", "experiment"), [(["../passwd"], "exp"), (["a/b"], "exp"),
                                                   ([""], "exp"), (list(CONFIGS), "..")])
async def test_backup_unsafe_names_refused(host, config_dir, tmp_path, names, experiment):
    with pytest.raises(UnsafeName):
        await host.backup_configs(str(config_dir), names, str(tmp_path / "b"), experiment, 1)
    assert not (tmp_path / "b").exists()


# Which files a set stands for -------------------------------------------------------------

async def test_choose_takes_xcfg_over_xml_and_xml_when_alone(host, config_dir):
    (config_dir / "describe-cobo0.xml").write_bytes(b"<Setup>older</Setup>")
    (config_dir / "prepare-experiment.xcfg").write_bytes(b"never read")
    chosen = await choose_config_files(host, str(config_dir), [
        "describe-cobo0", "configure-experiment", "describe-mutant", "describe-cobo0"])
    assert chosen == ["describe-cobo0.xcfg", "configure-experiment.xcfg", "describe-mutant.xml"]


async def test_choose_names_every_missing_stem_and_both_names_tried(host, config_dir):
    (config_dir / "configure-pulser.txt").write_bytes(b"neither suffix")
    with pytest.raises(RemoteFileNotFound) as caught:
        await choose_config_files(host, str(config_dir), [
            "describe-cobo0", "configure-pulser", "describe-cobo9"])
    message = str(caught.value)
    assert host.name in message and str(config_dir) in message
    assert ("no configuration file configure-pulser (neither configure-pulser.xcfg nor "
            "configure-pulser.xml is there)") in message
    assert "neither describe-cobo9.xcfg nor describe-cobo9.xml" in message
    assert "describe-cobo0" not in message


async def test_choose_ignores_a_directory_of_the_stems_name(host, config_dir):
    (config_dir / "describe-cobo5.xcfg").mkdir()
    (config_dir / "describe-cobo5.xml").write_bytes(b"<Setup/>")
    assert await choose_config_files(host, str(config_dir), ["describe-cobo5"]) == [
        "describe-cobo5.xml"]


@pytest.mark.parametrize("stem", ["../describe-cobo0", "-rf", "", "a/b"])
async def test_choose_refuses_unsafe_stems(host, config_dir, stem):
    with pytest.raises(UnsafeName):
        await choose_config_files(host, str(config_dir), [stem])


async def test_choose_in_a_missing_directory(host, tmp_path):
    with pytest.raises(RemoteFileNotFound, match="no-such-dir"):
        await choose_config_files(host, str(tmp_path / "no-such-dir"), ["describe-cobo0"])


# Digests ----------------------------------------------------------------------------------

def test_text_digest_is_sha256sum_of_a_utf8_lf_file_and_reads_line_ends_as_xml_does():
    data = "<Setup>é ✓</Setup>\n".encode()
    assert text_digest(data) == hashlib.sha256(data).hexdigest()
    assert text_digest(data.decode()) == text_digest(data)
    assert text_digest(b"<a>\r\n</a>\r") == text_digest("<a>\n</a>\n")
    assert text_digest("<a>x</a>") != text_digest("<a>y</a>")
    # Not UTF-8: read as Latin-1, as the server's XML would declare it.
    assert text_digest("é".encode("latin-1")) == text_digest("é")


async def test_digests_of_files_and_none_for_missing(host, config_dir):
    weird = "configure-run 'A' $(touch pwned) é.xcfg"
    (config_dir / weird).write_bytes(b"<Setup>weird</Setup>")
    big = b"<Setup>" + b"x" * 700_000 + b"</Setup>"  # several reads
    (config_dir / "configure-big.xcfg").write_bytes(big)
    digests = await config_digests(host, str(config_dir), [
        "describe-cobo0.xcfg", weird, "configure-big.xcfg", "describe-cobo9.xcfg"])
    assert digests == {
        "describe-cobo0.xcfg": hashlib.sha256(CONFIGS["describe-cobo0.xcfg"]).hexdigest(),
        weird: hashlib.sha256(b"<Setup>weird</Setup>").hexdigest(),
        "configure-big.xcfg": hashlib.sha256(big).hexdigest(),
        "describe-cobo9.xcfg": None}
    assert not (config_dir.parent / "pwned").exists() and not (config_dir / "pwned").exists()


async def test_digests_of_an_unreadable_file_fail_naming_it(host, config_dir):
    secret = config_dir / "configure-secret.xcfg"
    secret.write_bytes(b"<Setup/>")
    secret.chmod(0)
    if os.access(secret, os.R_OK):  # root reads anything: nothing to test then
        secret.chmod(0o644)
        pytest.skip("running as root")
    try:
        with pytest.raises(RemoteFileError, match=r"configure-secret\.xcfg"):
            await config_digests(host, str(config_dir), ["configure-secret.xcfg"])
    finally:
        secret.chmod(0o644)


async def test_digests_in_a_missing_directory_fail_naming_it(host, tmp_path):
    with pytest.raises(RemoteFileNotFound, match="no-such-dir"):
        await config_digests(host, str(tmp_path / "no-such-dir"), ["describe-cobo0.xcfg"])


async def test_digests_ignore_a_directory_of_the_name(host, config_dir):
    (config_dir / "describe-cobo7.xcfg").mkdir()
    assert await config_digests(host, str(config_dir), ["describe-cobo7.xcfg"]) == {
        "describe-cobo7.xcfg": None}


@pytest.mark.parametrize("name", ["../passwd", "a/b", "-n"])
async def test_digests_refuse_unsafe_names(host, config_dir, name):
    with pytest.raises(UnsafeName):
        await config_digests(host, str(config_dir), [name])
