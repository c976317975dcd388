"""Build and run the gSOAP ECC server of the wire tests (ecc.h, ecc_server.cpp).

:func:`build` runs Debian's ``soapcpp2`` on ``ecc.h`` and ``g++`` on the generated code
and ``ecc_server.cpp``, into ``cache_root/gsoap-<hash>/``, where the hash covers the
sources and the installed gSOAP; a directory already built is reused.
:class:`GsoapServer` runs the binary on a free loopback port.
"""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["GSOAP_HEADER", "BuildError", "GsoapServer", "build", "gsoap_version"]

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "ecc.h", HERE / "ecc_server.cpp")
#: Debian's libgsoap-dev header; its GSOAP_VERSION says which gSOAP the server is built with.
GSOAP_HEADER = Path("/usr/include/stdsoap2.h")
BINARY = "ecc_server"
_HINT = "run scripts/system-deps (it installs gsoap libgsoap-dev g++)"
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class BuildError(RuntimeError):
    """The server could not be built: a tool is missing or failed."""


def _tools() -> tuple[str, str]:
    soapcpp2, gxx = shutil.which("soapcpp2"), shutil.which("g++")
    missing = [name for name, path in (("soapcpp2", soapcpp2), ("g++", gxx)) if path is None]
    if not GSOAP_HEADER.exists():
        missing.append(str(GSOAP_HEADER))
    if missing:
        raise BuildError(f"cannot build the gSOAP ECC server: {', '.join(missing)} missing; "
                         f"{_HINT}")
    return soapcpp2, gxx


def gsoap_version() -> str:
    """The installed gSOAP's version, e.g. ``2.8.124``, from GSOAP_VERSION in stdsoap2.h."""
    found = re.search(r"#define\s+GSOAP_VERSION\s+(\d+)", GSOAP_HEADER.read_text())
    if found is None:
        raise BuildError(f"no GSOAP_VERSION in {GSOAP_HEADER}")
    number = int(found.group(1))
    return f"{number // 100000}.{number // 1000 % 100}.{number % 1000}"


def _key() -> str:
    digest = hashlib.sha256()
    for path in (*SOURCES, GSOAP_HEADER):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"{' '.join(command)} failed ({done.returncode}):\n"
                         f"{done.stdout}{done.stderr}")


def build(cache_root: Path) -> Path:
    """Return the server binary, building it under ``cache_root`` unless already there.

    Raises
    ------
    BuildError
        When soapcpp2, g++ or the gSOAP headers are missing, or the build fails.
    """
    soapcpp2, gxx = _tools()
    target = Path(cache_root) / f"gsoap-{_key()}"
    if (target / BINARY).is_file():
        return target / BINARY
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gsoap-build-", dir=cache_root))
    try:
        # Server side only (-S), no soapClientLib/soapServerLib (-L), no sample messages (-x).
        _run([soapcpp2, "-S", "-L", "-x", "-d", str(work), str(SOURCES[0])], work)
        _run([gxx, "-O1", "-Wall", "-I", str(work), "-o", str(work / BINARY),
              str(SOURCES[1]), str(work / "soapC.cpp"), str(work / "soapServer.cpp"),
              "-lgsoap++"], work)
        try:
            work.rename(target)  # atomic: a concurrent build that won leaves its own
        except OSError:
            if not (target / BINARY).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / BINARY


class GsoapServer:
    """The built server as a subprocess on a free 127.0.0.1 port; ``.url`` once started."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.port = 0
        self.banner = ""
        self.process: subprocess.Popen | None = None
        self._errors = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and return once it says it listens (it prints its port first)."""
        # A file, not a pipe: a pipe nobody reads could fill up. Closed by stop().
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen([str(self.binary), "0"], stdout=subprocess.PIPE,
                                        stderr=self._errors, text=True)
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.stop()
                raise BuildError(f"{self.binary} did not say it listens within {timeout} s")
        self.banner = self.process.stdout.readline()
        found = _LISTENING.search(self.banner)
        if found is None:
            errors = self.stop()
            raise BuildError(f"{self.binary} did not start: {self.banner!r} {errors}")
        self.port = int(found.group(1))

    def stop(self) -> str:
        """Kill it (if still running) and return what it wrote on stderr."""
        process, self.process = self.process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.kill()
        process.communicate()
        errors, self._errors = self._errors, None
        with errors:
            errors.seek(0)
            return errors.read()

    def wait_exit(self, timeout: float = 5.0) -> int:
        """Wait for the process to exit by itself (after ServerExit); its exit status."""
        assert self.process is not None
        return self.process.wait(timeout)


def _main() -> None:  # python tests/gsoap/build.py: build into .pytest_cache and say where
    root = Path(os.environ.get("GSOAP_CACHE", HERE.parent.parent / ".pytest_cache"))
    started = time.monotonic()
    binary = build(root / "d" / "gsoap")
    print(binary, f"(gSOAP {gsoap_version()}, {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    _main()
