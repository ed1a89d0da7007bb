"""Whether an address the server is about to connect to (a remote's, a webhook's) is public. Python's `is_global`
misses IPv6 addresses that carry an IPv4 address a network's translator or relay delivers to: NAT64's
64:ff9b::/96 (64:ff9b::7f00:1 is 127.0.0.1 behind DNS64/NAT64, as on IPv6-only cloud hosts), 6to4's 2002::/16 and
the deprecated IPv4-compatible ::/96; and it calls NAT64's local-use prefix and the deprecated site-local
fec0::/10 global. Those are judged by the IPv4 address inside, or refused."""
from __future__ import annotations

import ipaddress

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NEVER_PUBLIC = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("fec0::/10"))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: Address) -> bool:
    inner = _embedded_ipv4(address)
    if inner is not None:
        return is_public(inner)
    if isinstance(address, ipaddress.IPv6Address) and any(address in net for net in _NEVER_PUBLIC):
        return False
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
