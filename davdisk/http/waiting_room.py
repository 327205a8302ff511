"""Who waits in the gate (``http/gate.py``): the connections waiting for their request head (or
handshake, or the end of a lingering close), by client address, and the bytes of request
heads they hold; and which one goes when there are too many, or they hold too much.

Only the gate's selector thread uses it (worker threads hand connections to the gate through
its inbox), so it takes no lock. A waiting connection carries its client address
(``gate_addr``) and the part of its head read so far (``gate_buffer``).
"""

from __future__ import annotations

from typing import Any


class WaitingRoom:
    def __init__(self) -> None:
        # By client address, oldest first (dicts keep insertion order).
        self._by_addr: dict[str, dict[Any, None]] = {}
        self.count = 0
        self.buffered = 0  # bytes of request heads held

    def add(self, conn: Any) -> None:
        self._by_addr.setdefault(conn.gate_addr, {})[conn] = None
        self.count += 1
        self.buffered += len(conn.gate_buffer)

    def remove(self, conn: Any) -> bool:
        """Take ``conn`` out (False if it was not waiting)."""
        conns = self._by_addr.get(conn.gate_addr)
        if conns is None or conn not in conns:
            return False
        del conns[conn]
        if not conns:
            del self._by_addr[conn.gate_addr]
        self.count -= 1
        self.buffered -= len(conn.gate_buffer)
        return True

    def all(self) -> list[Any]:
        return [c for conns in self._by_addr.values() for c in conns]

    def clear(self) -> list[Any]:
        """Empty the room; what waited in it."""
        conns = self.all()
        self._by_addr.clear()
        self.count = 0
        self.buffered = 0
        return conns

    def victim(self) -> Any:
        """The oldest waiting connection of the address with the most: a flood from one
        address evicts itself, not the idle keep-alive connections of everyone else."""
        addr = max(self._by_addr, key=lambda a: len(self._by_addr[a]))
        return next(iter(self._by_addr[addr]))

    def largest(self) -> Any:
        """The connection holding the most bytes of an unfinished request head."""
        return max(self.all(), key=lambda c: len(c.gate_buffer))
