"""The engine: the one asyncio service that talks to the hardware.

Web requests write command rows and read state; the engine polls every ECC
server (:mod:`.coordinator`), runs commands (:mod:`.control`) and writes what it
learns to the database through one thread (:mod:`.database`). :mod:`.supervisor`
ties them together.
"""
