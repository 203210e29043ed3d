"""rtnetlink (NETLINK_ROUTE), the one request the runtime makes: set a network link up.

runc brings up the loopback of a new network namespace from its init (its "loopback" network,
vishvananda/netlink's LinkSetUp); this is the same request, built by hand from the C-level
`_socket` (no `socket`, no pyroute2 on the runtime's path). Host byte order, 4-byte aligned:

    nlmsghdr   len u32 | type u16 RTM_NEWLINK | flags u16 REQUEST|ACK | seq u32 | pid u32
    ifinfomsg  family u8 AF_UNSPEC | pad u8 | type u16 | index i32 0 | flags u32 | change u32
    rtattr     len u16 | type u16 IFLA_IFNAME | name, NUL-terminated, padded to 4
                                       ◄──  NLMSG_ERROR: nlmsghdr | error i32 (0: the ack, or -errno)

Index 0 with IFLA_IFNAME makes the kernel find the link by name (rtnl_setlink); `change` names
the one flag touched, so the others stay as they are.
"""
from __future__ import annotations

import os
import sys

import _socket

# <linux/rtnetlink.h>, <linux/netlink.h>, <linux/if_link.h>, <linux/if.h>
RTM_NEWLINK = 16
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
IFLA_IFNAME = 3
IFF_UP = 0x1
_NLMSGHDR = 16


def _u(value: int, size: int) -> bytes:
    return value.to_bytes(size, sys.byteorder)


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return _u(length, 2) + _u(kind, 2) + data + b"\0" * (-length % 4)


def setlink_request(name: str, flags: int, change: int, seq: int = 1) -> bytes:
    """The RTM_NEWLINK message that sets `flags` (within the mask `change`) on link `name`."""
    body = (_u(_socket.AF_UNSPEC, 1) + b"\0" + _u(0, 2) + _u(0, 4) + _u(flags, 4) + _u(change, 4)
            + _attr(IFLA_IFNAME, name.encode() + b"\0"))
    return (_u(_NLMSGHDR + len(body), 4) + _u(RTM_NEWLINK, 2) + _u(NLM_F_REQUEST | NLM_F_ACK, 2)
            + _u(seq, 4) + _u(0, 4) + body)


def ack_errno(reply: bytes, seq: int = 1) -> int:
    """The errno of the kernel's answer to request `seq` (0: done); ValueError if the reply is
    no NLMSG_ERROR message for it."""
    if len(reply) < _NLMSGHDR + 4 or int.from_bytes(reply[4:6], sys.byteorder) != NLMSG_ERROR \
            or int.from_bytes(reply[8:12], sys.byteorder) != seq:
        raise ValueError(f"unexpected rtnetlink reply {reply[:24]!r}")
    return -int.from_bytes(reply[16:20], sys.byteorder, signed=True)


def link_up(name: str) -> None:
    """Set link `name` of our network namespace up (IFF_UP), as `ip link set NAME up` does.
    OSError with the kernel's errno: ENODEV (no such link), EPERM (no CAP_NET_ADMIN over the
    namespace)."""
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, _socket.NETLINK_ROUTE)
    try:
        sock.send(setlink_request(name, IFF_UP, IFF_UP))
        err = ack_errno(sock.recv(65536))
    finally:
        sock.close()
    if err:
        raise OSError(err, os.strerror(err))
