"""The XML documents of the protocol: ConfigId, the config list, and DataLinkSet.

A configuration set, as sent in every transition's ``configID`` argument::

    <ConfigId>
      <SubConfigId type="describe">cobo0</SubConfigId>
      <SubConfigId type="prepare">experiment</SubConfigId>
      <SubConfigId type="configure">experiment</SubConfigId>
    </ConfigId>

GetConfigIDs answers ``<ConfigIdSet>`` holding one ``<ConfigId>`` per set (older
servers used another root name, so the root's name is not checked).

Where each board sends its data, the ``table`` argument::

    <DataLinkSet>
      <DataLink>
        <DataSender id="CoBo[0]"/>
        <DataRouter name="DataRouter0" ipAddress="10.0.0.20" port="46005" type="TCP"/>
      </DataLink>
    </DataLinkSet>
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from .exceptions import XmlError

__all__ = [
    "CONFIG_SUFFIXES",
    "FILE_STEPS",
    "STEPS",
    "ConfigFile",
    "ConfigId",
    "ConfigureAnswer",
    "DataLink",
    "DataLinkSet",
    "RouterType",
    "parse_config_list",
    "parse_configure_answer",
    "parse_data_senders",
]

#: The three names of a configuration set, in order.
STEPS = ("describe", "prepare", "configure")
#: The file name prefixes the server really reads: Prepare reads ``configure-`` + its
#: prepare name, so ``prepare-*`` files are never read (GET-PROTOCOL.md, configID).
FILE_STEPS = ("describe", "configure")
#: A configuration file is ``NAME.xcfg``, else ``NAME.xml``.
CONFIG_SUFFIXES = (".xcfg", ".xml")

# No entities, no network, no huge trees: these documents come from other machines.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          remove_blank_text=True)


def _parse(text: str | bytes, what: str) -> etree._Element:
    """Parse ``text`` as XML or raise :class:`XmlError` saying what it was meant to be."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    if not text or not text.strip():
        raise XmlError(f"{what}: empty document")
    try:
        return etree.fromstring(text, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"{what}: malformed XML: {exc}") from None


def _local(tag: object) -> str:
    """The element name without namespace (comments and PIs have none)."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _to_text(root: etree._Element) -> str:
    return etree.tostring(root, encoding="unicode")


@dataclass(frozen=True, slots=True)
class ConfigId:
    """The names of the describe, prepare and configure files of one configuration set."""

    describe: str
    prepare: str
    configure: str

    def __post_init__(self) -> None:
        for step in STEPS:
            name = getattr(self, step)
            if not isinstance(name, str) or not name.strip():
                raise XmlError(f"ConfigId: the {step} name is empty")
            if "/" in name or "\\" in name or name in (".", ".."):
                raise XmlError(f"ConfigId: the {step} name {name!r} is not a plain file name")

    def __str__(self) -> str:
        return f"{self.describe}/{self.prepare}/{self.configure}"

    @classmethod
    def parse(cls, text: str) -> ConfigId:
        """Read the ``describe/prepare/configure`` form users see.

        Raises
        ------
        XmlError
            When it is not three non-empty names separated by slashes.
        """
        parts = text.strip().split("/")
        if len(parts) != 3:
            raise XmlError(f"configuration {text!r}: expected DESCRIBE/PREPARE/CONFIGURE")
        return cls(*parts)

    def file_stems(self) -> dict[str, str]:
        """The files this set makes the server read, without suffix, by prefix.

        ``{"describe": "describe-cobo0", "configure": "configure-experiment"}``:
        Describe reads the first; Prepare (by its prepare name) and Configure read
        ``configure-`` files; each is ``.xcfg``, else ``.xml``. A set whose prepare
        name differs from its configure name makes Prepare read another configure
        file, listed under ``"prepare"``.
        """
        stems = {"describe": f"describe-{self.describe}",
                 "configure": f"configure-{self.configure}"}
        if self.prepare != self.configure:
            stems["prepare"] = f"configure-{self.prepare}"
        return stems

    def as_xml(self) -> str:
        """Return the ``<ConfigId>`` document (see the module docstring)."""
        return _to_text(self._element())

    def _element(self) -> etree._Element:
        root = etree.Element("ConfigId")
        for step in STEPS:
            etree.SubElement(root, "SubConfigId", type=step).text = getattr(self, step)
        return root

    @classmethod
    def from_xml(cls, xml: str | bytes | etree._Element) -> ConfigId:
        """Read a ``<ConfigId>`` document or element.

        Raises
        ------
        XmlError
            When it is malformed, a step is missing or repeated, or a type is unknown.
        """
        node = xml if isinstance(xml, etree._Element) else _parse(xml, "ConfigId")
        if _local(node.tag) != "ConfigId":
            raise XmlError(f"ConfigId: root element is <{_local(node.tag)}>, not <ConfigId>")
        names: dict[str, str] = {}
        for sub in node:
            if _local(sub.tag) != "SubConfigId":
                continue
            step = sub.get("type")
            if step not in STEPS:
                raise XmlError(f"ConfigId: unknown SubConfigId type {step!r}")
            if step in names:
                raise XmlError(f"ConfigId: SubConfigId type {step!r} given twice")
            names[step] = (sub.text or "").strip()
        missing = [step for step in STEPS if step not in names]
        if missing:
            raise XmlError(f"ConfigId: missing SubConfigId for {', '.join(missing)}")
        return cls(**names)

    @staticmethod
    def list_as_xml(configs: Iterable[ConfigId], root: str = "ConfigIdSet") -> str:
        """Return the GetConfigIDs document listing ``configs``."""
        node = etree.Element(root)
        node.extend(config._element() for config in configs)
        return _to_text(node)


def parse_config_list(text: str | bytes) -> list[ConfigId]:
    """Read GetConfigIDs' answer: every ``<ConfigId>`` child, whatever the root's name.

    Raises
    ------
    XmlError
        When the document is malformed or one of its sets is.
    """
    root = _parse(text, "config list")
    return [ConfigId.from_xml(node) for node in root if _local(node.tag) == "ConfigId"]


class RouterType(enum.StrEnum):
    """How a board talks to its data router."""

    TCP = "TCP"
    FDT = "FDT"
    ICE = "ICE"
    ZBUF = "ZBUF"


@dataclass(frozen=True, slots=True)
class DataLink:
    """One board (``CoBo[0]``, ``Mutant[master]``) sending to one data router."""

    sender: str
    router_name: str
    router_ip: str
    router_port: int
    router_type: RouterType = RouterType.TCP

    def __post_init__(self) -> None:
        if not self.sender.strip():
            raise XmlError("DataLink: the DataSender id is empty")
        if not self.router_name.strip() or not self.router_ip.strip():
            raise XmlError(f"DataLink {self.sender}: the DataRouter needs a name and ipAddress")
        if not 0 < int(self.router_port) < 65536:
            raise XmlError(f"DataLink {self.sender}: port {self.router_port} is out of range")
        object.__setattr__(self, "router_port", int(self.router_port))
        try:
            object.__setattr__(self, "router_type", RouterType(self.router_type))
        except ValueError:
            raise XmlError(f"DataLink {self.sender}: unknown router type "
                           f"{self.router_type!r}") from None


@dataclass(frozen=True, slots=True)
class DataLinkSet:
    """Every data link of one ECC server: the ``table`` argument of a transition."""

    links: tuple[DataLink, ...]

    def __iter__(self):
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def as_xml(self) -> str:
        """Return the ``<DataLinkSet>`` document (see the module docstring)."""
        root = etree.Element("DataLinkSet")
        for link in self.links:
            node = etree.SubElement(root, "DataLink")
            etree.SubElement(node, "DataSender", id=link.sender)
            etree.SubElement(node, "DataRouter", name=link.router_name,
                             ipAddress=link.router_ip, port=str(link.router_port),
                             type=str(link.router_type))
        return _to_text(root)

    @classmethod
    def from_xml(cls, xml: str | bytes) -> DataLinkSet:
        """Read a ``<DataLinkSet>`` document.

        Raises
        ------
        XmlError
            When it is malformed or a link lacks its sender or router attributes.
        """
        root = _parse(xml, "DataLinkSet")
        if _local(root.tag) != "DataLinkSet":
            raise XmlError(f"DataLinkSet: root element is <{_local(root.tag)}>")
        links = []
        for number, node in enumerate((n for n in root if _local(n.tag) == "DataLink"), 1):
            sender = next((n for n in node if _local(n.tag) == "DataSender"), None)
            router = next((n for n in node if _local(n.tag) == "DataRouter"), None)
            if sender is None or router is None:
                raise XmlError(f"DataLinkSet: DataLink {number} needs a DataSender and a "
                               "DataRouter")
            attrs = {key: router.get(key) for key in ("name", "ipAddress", "port")}
            missing = [key for key, value in attrs.items() if value is None]
            if sender.get("id") is None:
                missing.insert(0, "DataSender id")
            if missing:
                raise XmlError(f"DataLinkSet: DataLink {number} lacks {', '.join(missing)}")
            try:
                port = int(attrs["port"])
            except ValueError:
                raise XmlError(f"DataLinkSet: DataLink {number} port {attrs['port']!r} "
                               "is not a number") from None
            links.append(DataLink(sender.get("id"), attrs["name"], attrs["ipAddress"], port,
                                  router.get("type", "TCP")))
        return cls(tuple(links))


def parse_data_senders(text: str | bytes) -> list[str]:
    """Read Describe's answer, ``<DataSenderSet><DataSender id="CoBo[0]" />...``.

    Raises
    ------
    XmlError
        When it is malformed, or a DataSender has no id.
    """
    root = _parse(text, "DataSenderSet")
    senders = []
    for node in root.iter():
        if _local(node.tag) == "DataSender":
            if not node.get("id"):
                raise XmlError("DataSenderSet: a DataSender has no id")
            senders.append(node.get("id"))
    return senders


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """One configuration file as the server read it: its name and its whole text."""

    filename: str
    text: str


@dataclass(frozen=True, slots=True)
class ConfigureAnswer:
    """Configure's answer: the data links in use and every file the server used."""

    links: DataLinkSet | None
    files: tuple[ConfigFile, ...]


# Configure answers two documents one after the other; each is found by its root.
_DOC_START = {"DataLinkSet": b"<DataLinkSet", "ConfigSet": b"<ConfigSet"}


def parse_configure_answer(text: str | bytes) -> ConfigureAnswer:
    """Read Configure's answer: a ``<DataLinkSet>``, a newline, then a ``<ConfigSet>``.

    The ConfigSet holds one ``<File filename="...">`` per file used, with its full
    text. Whether the real server writes that text escaped or as child elements is
    not settled (GET-PROTOCOL.md says only "holding its full text"): escaped text is
    taken as it is; child elements are serialised back to text. An empty answer (a
    server that sends nothing) has no links and no files.

    Raises
    ------
    XmlError
        When either document is malformed or a File has no filename.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if not data.strip():
        return ConfigureAnswer(None, ())
    starts = sorted((data.find(tag), name) for name, tag in _DOC_START.items()
                    if data.find(tag) >= 0)
    if not starts:
        raise XmlError("Configure's answer holds neither a DataLinkSet nor a ConfigSet")
    parts = {name: data[at:(starts[i + 1][0] if i + 1 < len(starts) else len(data))]
             for i, (at, name) in enumerate(starts)}
    links = DataLinkSet.from_xml(parts["DataLinkSet"]) if "DataLinkSet" in parts else None
    files: list[ConfigFile] = []
    if "ConfigSet" in parts:
        try:
            root = etree.fromstring(parts["ConfigSet"].strip(), _KEEP_TEXT_PARSER)
        except etree.XMLSyntaxError as exc:
            raise XmlError(f"ConfigSet: malformed XML: {exc}") from None
        for node in root:
            if _local(node.tag) != "File":
                continue
            name = node.get("filename")
            if not name:
                raise XmlError("ConfigSet: a File has no filename")
            if len(node):
                body = (node.text or "") + "".join(
                    etree.tostring(child, encoding="unicode") for child in node)
            else:
                body = node.text or ""
            files.append(ConfigFile(name, body))
    return ConfigureAnswer(links, tuple(files))


# The files' text is kept as sent (blank text included, it is hashed), and a whole
# configuration may exceed lxml's default limits; entities are never resolved.
_KEEP_TEXT_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
