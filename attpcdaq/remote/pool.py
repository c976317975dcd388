"""One :class:`RemoteHost` per DAQ computer: SSH hosts share nothing but reuse their connection.

The engine asks the pool for a host every time it checks a data router; the
pool hands back the same object, so the same SSH connection serves every
check, filing and backup of that host. Addresses that are this machine get
a :class:`LocalHost` (no SSH at all).
"""

from __future__ import annotations

import asyncio
import dataclasses

from .base import DEFAULT_TIMEOUT, RemoteHost
from .local import LocalHost
from .ssh import SshHost, SshOptions

__all__ = ["LOCAL_ADDRESSES", "HostPool", "is_local_address"]

#: Addresses that always mean this machine.
LOCAL_ADDRESSES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1"})


def is_local_address(address: str) -> bool:
    """True when ``address`` is this machine's loopback (``localhost``, ``127.x.y.z``, ``::1``).

    A DAQ computer's LAN address is not recognised as local: mark such a host
    local explicitly (``HostPool.host(..., local=True)``).
    """
    address = address.strip().lower()
    return address in LOCAL_ADDRESSES or address.startswith("127.")


class HostPool:
    """Hands out one RemoteHost per (address, port, user); closes them all at the end.

    Parameters
    ----------
    options
        How to reach SSH hosts; per-host ``port``/``username`` override it.
    timeout
        The default timeout of each operation, in seconds.
    """

    def __init__(self, options: SshOptions | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.options = options or SshOptions()
        self.timeout = timeout
        self._hosts: dict[tuple[str, int | None, str | None, bool], RemoteHost] = {}

    def host(self, address: str, *, port: int | None = None, username: str | None = None,
             local: bool | None = None) -> RemoteHost:
        """Return the host for ``address``, the same object on every call.

        Parameters
        ----------
        address
            Host name, IP address or SSH config alias.
        port, username
            Override the pool's SSH options for this host.
        local
            True: this machine, no SSH. False: SSH even to a loopback address.
            None (default): local exactly when :func:`is_local_address` says so.

        Returns
        -------
        RemoteHost
            A :class:`LocalHost` or an :class:`SshHost`.
        """
        is_local = is_local_address(address) if local is None else local
        key = (address, None if is_local else port, None if is_local else username, is_local)
        if key not in self._hosts:
            self._hosts[key] = (LocalHost(address, timeout=self.timeout) if is_local
                                else SshHost(address, self._options_for(port, username),
                                             timeout=self.timeout))
        return self._hosts[key]

    def _options_for(self, port: int | None, username: str | None) -> SshOptions:
        """The pool's options with this host's port and user, when given."""
        changes = {k: v for k, v in (("port", port), ("username", username)) if v is not None}
        return dataclasses.replace(self.options, **changes) if changes else self.options

    async def close(self) -> None:
        """Close every host's connection."""
        hosts, self._hosts = list(self._hosts.values()), {}
        await asyncio.gather(*(h.close() for h in hosts), return_exceptions=True)

    async def __aenter__(self) -> HostPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
