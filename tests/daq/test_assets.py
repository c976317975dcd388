"""The page's assets come from the package itself: no CDN, no asset package to build."""

from pathlib import Path

import pytest

import attpcdaq

BOOTSTRAP = Path(attpcdaq.__file__).parent / "daq" / "static" / "bootstrap"


@pytest.mark.parametrize("path", ["css/bootstrap.min.css", "js/bootstrap.bundle.min.js"])
def test_bootstraps_files_are_served_from_the_package(client, path):
    response = client.get(f"/static/bootstrap/{path}")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    version = (BOOTSTRAP / "VERSION").read_text().strip()
    assert f"Bootstrap  v{version}".encode() in body or f"Bootstrap v{version}".encode() in body


def test_bootstrap_ships_with_its_licence():
    assert "The MIT License" in (BOOTSTRAP / "LICENSE").read_text()
