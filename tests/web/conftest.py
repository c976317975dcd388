"""Fixtures of the browser tests: a demo, headless Chromium and a page, per module.

(Helpers are imported from web.test_browser, where the demo's driver lives.)
"""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright
from web.test_browser import CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT_MS, Demo


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """The demo's data directory (routers' work dirs under it)."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo(demo_dir):
    """``attpcdaq demo`` on a free port, for the module's tests."""
    demo = Demo(demo_dir)
    yield demo
    demo.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def viewport():
    """The page's size; a module overrides it for a wider page."""
    return {"width": 1366, "height": 768}


@pytest.fixture
def page(browser, viewport):
    """A fresh page that records the page's script errors in ``page.errors``."""
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()
