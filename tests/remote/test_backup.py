"""backup_configs through both transports: copies land on this machine, idempotently."""

import pytest

from attpcdaq.remote import FileInfo, FilingConflict, RemoteFileNotFound, UnsafeName

CONFIGS = {"describe-cobo0.xcfg": b"<Setup>describe</Setup>\n",
           "prepare-experiment.xcfg": b"<Setup>prepare \xc3\xa9</Setup>\n",
           "configure-experiment.xcfg": b"<Setup>configure</Setup>\n" * 100}


@pytest.fixture
def config_dir(tmp_path):
    directory = tmp_path / "ecc config"
    directory.mkdir()
    for name, data in CONFIGS.items():
        (directory / name).write_bytes(data)
    (directory / "configure-other.xcfg").write_bytes(b"not selected")
    return directory


async def test_backup_copies_the_three_files(host, config_dir, tmp_path):
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
