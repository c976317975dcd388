"""The configuration directory of an emulated ECC server: its ``.xcfg`` files.

Files are named ``describe-NAME`` and ``configure-NAME``, ``.xcfg``, else ``.xml``
(``describe-cobo0.xcfg``, ``configure-experiment.xcfg``), as the real server's
repository: Prepare reads ``configure-`` + its prepare name, and ``prepare-*``
files are never read. A describe file names the boards it describes, like the
hardware description of the real server::

    <Setup>
      <Node id="CoBo"><Instance id="0"/></Node>
      <Node id="Mutant"><Instance id="master"/></Node>
    </Setup>

which describes the data senders ``CoBo[0]`` and ``Mutant[master]``. An
``Instance id="*"`` holds defaults for every instance and names no board.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ..get.xmldocs import CONFIG_SUFFIXES, FILE_STEPS, ConfigId, XmlError

__all__ = ["ConfigDir", "ConfigFileError", "ReadFile", "describe_boards"]
# Configuration files are trusted more than requests, but never resolve entities anyway.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False)


class ConfigFileError(ValueError):
    """A configuration file that is missing or cannot be read; the message names it."""


@dataclass(frozen=True)
class ReadFile:
    """A configuration file as read: its name, its whole text, its parsed root."""

    filename: str
    text: str
    root: etree._Element


class ConfigDir:
    """The configuration files of one directory, read afresh on every call."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise NotADirectoryError(f"configuration directory {self.path} does not exist "
                                     "or is not a directory")

    def names(self, prefix: str) -> list[str]:
        """The configuration names offered with ``prefix`` (describe, configure), in
        byte order.

        Raises
        ------
        OSError
            When the directory cannot be listed (FileNotFoundError when it is gone).
        """
        start = f"{prefix}-"
        names = {entry.name[len(start):-len(suffix)]
                 for entry in self.path.iterdir() if entry.name.startswith(start)
                 for suffix in CONFIG_SUFFIXES if entry.name.endswith(suffix)}
        return sorted((name for name in names if name), key=lambda name: name.encode())

    def config_ids(self) -> list[ConfigId]:
        """Every describe name by every configure name, the prepare name = the configure.

        Raises
        ------
        OSError
            When the directory cannot be listed.
        """
        found = []
        for describe, configure in itertools.product(*(self.names(p) for p in FILE_STEPS)):
            try:
                found.append(ConfigId(describe, configure, configure))
            except XmlError:
                continue  # a name ConfigId refuses cannot be asked for either
        return found

    def read(self, prefix: str, name: str) -> ReadFile:
        """Read and parse ``PREFIX-NAME.xcfg``, else ``PREFIX-NAME.xml``.

        Raises
        ------
        ConfigFileError
            When neither exists (``Configuration 'describe-cobo9' does not exist.``,
            as the real server says) or it is not well-formed XML.
        """
        stem = f"{prefix}-{name}"
        for suffix in CONFIG_SUFFIXES:
            filename = stem + suffix
            try:
                data = (self.path / filename).read_bytes()
                break
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigFileError(f"cannot read {filename}: {exc.strerror}") from None
        else:
            raise ConfigFileError(f"Configuration '{stem}' does not exist.")
        try:
            root = etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise ConfigFileError(f"{filename} is not well-formed XML: {exc}") from None
        return ReadFile(filename, data.decode("utf-8", errors="replace"), root)


def describe_boards(root: etree._Element) -> frozenset[str] | None:
    """The data senders a describe file names (``CoBo[0]``), or None if it has no Node."""
    nodes = list(root.iter("{*}Node"))  # in any namespace or none
    if not nodes:
        return None
    return frozenset(f"{node.get('id')}[{instance.get('id')}]" for node in nodes
                     for instance in node.iterchildren("{*}Instance")
                     if instance.get("id") not in (None, "*"))
