"""Fixtures for the emulator tests: a config directory, running servers, raw SOAP posts.

(Tests import nothing from here: pytest's importlib mode makes conftest unimportable.)
"""

import httpx
import pytest
from lxml import etree

from attpcdaq.emulator import EccEmulatorGroup
from attpcdaq.get import EccClient

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

CONFIG_FILES = {
    "describe-cobo0.xcfg": '<Setup><Node id="CoBo"><Instance id="*"/><Instance id="0"/></Node>'
                           "</Setup>",
    "describe-mutant.xcfg": '<Setup><Node id="Mutant"><Instance id="master"/></Node></Setup>',
    "describe-plain.xcfg": "<Setup><Comment>no Node: any sender goes</Comment></Setup>",
    "describe-broken.xcfg": "<Setup><Node id=",
    "prepare-experiment.xcfg": "<Setup/>",
    "configure-experiment.xcfg": "<Setup/>",
    "configure-pulser.xcfg": "<Setup/>",
    "notes.txt": "not a configuration file",
}


@pytest.fixture
def config_dir(tmp_path):
    """A configuration directory with the files of :data:`CONFIG_FILES`."""
    for name, text in CONFIG_FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def seconds():
    """How long a transition of the emulated servers takes in these tests."""
    return 0.1


@pytest.fixture
async def group(config_dir, seconds):
    """Three emulated servers on free loopback ports."""
    async with EccEmulatorGroup(count=3, config_dir=config_dir,
                                transition_seconds=seconds) as servers:
        yield servers


@pytest.fixture
def server(group):
    """The first server of the group."""
    return group.servers[0]


@pytest.fixture
async def client(server):
    """An ECC client of :func:`server`, with timeouts short enough for a hung test."""
    async with EccClient(server.url, state_timeout=5, transition_timeout=10) as ecc:
        yield ecc


@pytest.fixture
async def other_client(server):
    """A second client of the same server: its own connection."""
    async with EccClient(server.url, state_timeout=5, transition_timeout=10) as ecc:
        yield ecc


class Answer:
    """A raw HTTP answer and its SOAP body's first element."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.raw = response.content
        root = etree.fromstring(response.content)
        self.element = root.find(f"{{{SOAP_ENV}}}Body")[0]

    def field(self, name: str) -> str:
        """The text of a child element of the answer, in urn:ecc or unqualified."""
        node = self.element.find(f"{{urn:ecc}}{name}")
        if node is None:
            node = self.element.find(name)
        return node.text or ""


@pytest.fixture
async def post():
    """Post a raw body to a URL and return its :class:`Answer`."""
    async with httpx.AsyncClient(timeout=10) as http:
        async def send(url: str, body: str | bytes, path: str = "/", **headers) -> Answer:
            response = await http.post(url.rstrip("/") + path, content=body,
                                       headers={"Content-Type": "text/xml", **headers})
            return Answer(response)
        yield send
