"""Whether a host name or address is this machine's loopback: the one rule the client (no proxy
for a local server), `ftui serve` (no key needed) and the server's Host check share."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
