"""The configuration directory of an emulated ECC server: its ``.xcfg`` files.

Files are named ``STEP-NAME.xcfg`` for the steps describe, prepare and configure
(``describe-cobo0.xcfg``, ``prepare-experiment.xcfg``). A describe file names the
boards it describes, like the hardware description of the real server::

    <Setup>
      <Node id="CoBo"><Instance id="0"/></Node>
      <Node id="Mutant"><Instance id="master"/></Node>
    </Setup>

which describes the data senders ``CoBo[0]`` and ``Mutant[master]``. An
``Instance id="*"`` holds defaults for every instance and names no board.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from lxml import etree

from ..get.xmldocs import STEPS, ConfigId, XmlError

__all__ = ["ConfigDir", "ConfigFileError", "describe_boards"]

_SUFFIX = ".xcfg"
# Configuration files are trusted more than requests, but never resolve entities anyway.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False)


class ConfigFileError(ValueError):
    """A configuration file that is missing or cannot be read; the message names it."""


class ConfigDir:
    """The ``.xcfg`` files of one directory, read afresh on every call."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise NotADirectoryError(f"configuration directory {self.path} does not exist "
                                     "or is not a directory")

    def names(self, step: str) -> list[str]:
        """The configuration names offered for ``step``, sorted."""
        prefix = f"{step}-"
        names = (p.name[len(prefix):-len(_SUFFIX)] for p in self.path.glob(f"{prefix}*{_SUFFIX}")
                 if p.is_file())
        return sorted(name for name in names if name)

    def config_ids(self) -> list[ConfigId]:
        """Every combination of a describe, a prepare and a configure file, sorted."""
        found = []
        for combination in itertools.product(*(self.names(step) for step in STEPS)):
            try:
                found.append(ConfigId(*combination))
            except XmlError:
                continue  # a name ConfigId refuses cannot be asked for either
        return found

    def read(self, step: str, name: str) -> etree._Element:
        """Parse ``STEP-NAME.xcfg`` and return its root element.

        Raises
        ------
        ConfigFileError
            When the file does not exist or is not well-formed XML.
        """
        filename = f"{step}-{name}{_SUFFIX}"
        path = self.path / filename
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigFileError(f"{filename} not found in the configuration directory "
                                  f"{self.path}") from None
        except OSError as exc:
            raise ConfigFileError(f"cannot read {filename}: {exc.strerror}") from None
        try:
            return etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise ConfigFileError(f"{filename} is not well-formed XML: {exc}") from None


def _local(node: etree._Element) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def describe_boards(root: etree._Element) -> frozenset[str] | None:
    """The data senders a describe file names (``CoBo[0]``), or None if it has no Node."""
    nodes = [node for node in root.iter() if _local(node) == "Node"]
    if not nodes:
        return None
    boards = set()
    for node in nodes:
        for instance in node:
            if _local(instance) == "Instance" and instance.get("id") not in (None, "*"):
                boards.add(f"{node.get('id')}[{instance.get('id')}]")
    return frozenset(boards)
