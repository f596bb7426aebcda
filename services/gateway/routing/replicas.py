"""The replicas of one backend: which addresses there are, one channel each.

A target setting lists one or more entries separated by commas. `host:port` is one replica (the
channel resolves the name itself); `dns:///host:port` is every address the name resolves to (a
headless Service: one per pod), resolved here with the system resolver (`getaddrinfo` in a
thread) at start and every `GATEWAY_RESOLVE_SECONDS`, so pods that scaling adds are used within
that time and pods that go away are dropped. A name that does not resolve keeps the replicas it
had; with none yet, the `dns:///` target itself is the one replica (its calls then fail the usual
way, naming the backend). Plain class: the channel maker and the resolver are passed in.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from services.gateway.routing.load import ReplicaLoad, Typical

log = logging.getLogger("imagemesh.gateway.routing")

DNS_PREFIX = "dns:///"
Connect = Callable[[str], grpc.aio.Channel]
Resolve = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class Entry:
    text: str  # as written in the setting
    host: str = ""  # set for dns:/// entries
    port: int = 0

    @property
    def resolved(self) -> bool:
        return bool(self.host)


def parse_targets(value: str) -> list[Entry]:
    """`a:1,dns:///b:2` -> its entries; raises ValueError naming a bad one."""
    entries = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if not part.startswith(DNS_PREFIX):
            entries.append(Entry(part))
            continue
        host, sep, port = part[len(DNS_PREFIX) :].rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r}: a dns:/// target needs host:port")
        entries.append(Entry(part, host.strip("[]"), int(port)))
    if not entries:
        raise ValueError("no target given")
    return entries


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, as `ip:port` (`[ip]:port` for IPv6), sorted."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = set()
    for family, _, _, _, sockaddr in infos:
        ip = sockaddr[0]
        addresses.add(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
    return sorted(addresses)


@dataclass(eq=False)
class Replica:
    address: str
    channel: grpc.aio.Channel
    load: ReplicaLoad = field(default_factory=ReplicaLoad)
    _stubs: dict[type, Any] = field(default_factory=dict)

    @property
    def work(self) -> float:
        return self.load.work

    def stub(self, stub_type: type) -> Any:
        stub = self._stubs.get(stub_type)
        if stub is None:
            stub = self._stubs[stub_type] = stub_type(self.channel)
        return stub


class ReplicaSet:
    def __init__(
        self,
        backend: str,
        target: str,
        connect: Connect,
        resolve: Resolve = system_resolve,
        retire_grace: float = 300.0,
    ) -> None:
        self.backend = backend
        self.entries = parse_targets(target)
        self._connect = connect
        self._resolve = resolve
        self._retire_grace = retire_grace  # calls in flight on a dropped replica may finish
        self._replicas: dict[str, Replica] = {}
        self.typical = Typical()  # the pace a replica that has timed no call yet is given
        self._retiring: set[asyncio.Task[None]] = set()
        # Until the first refresh, a dns:/// entry is its own one replica (gRPC resolves it).
        self._resolved: dict[Entry, list[str]] = {e: [e.text] for e in self.entries if e.resolved}
        self._set(self._addresses())

    @property
    def replicas(self) -> list[Replica]:
        return list(self._replicas.values())

    @property
    def resolves(self) -> bool:
        """Whether any entry is a dns:/// name to resolve again from time to time."""
        return bool(self._resolved)

    async def refresh(self) -> None:
        """Resolves the dns:/// entries again; adds the new addresses, drops the gone ones."""
        for entry in self._resolved:
            try:
                found = await self._resolve(entry.host, entry.port)
            except OSError as exc:
                log.warning("%s: cannot resolve %s (%s)", self.backend, entry.host, exc)
                continue
            if found:
                self._resolved[entry] = found
        self._set(self._addresses())

    def _addresses(self) -> list[str]:
        addresses: list[str] = []
        for entry in self.entries:
            addresses.extend(self._resolved.get(entry, [entry.text]))
        return addresses

    def _set(self, addresses: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(addresses))
        for address in wanted:
            if address not in self._replicas:
                self._replicas[address] = Replica(
                    address, self._connect(address), ReplicaLoad(typical=self.typical)
                )
                if self.resolves:
                    log.info("%s: replica %s added", self.backend, address)
        for address in [a for a in self._replicas if a not in wanted]:
            replica = self._replicas.pop(address)
            log.info("%s: replica %s dropped", self.backend, address)
            task = asyncio.get_running_loop().create_task(replica.channel.close(self._retire_grace))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        channels = [replica.channel for replica in self._replicas.values()]
        self._replicas.clear()
        await asyncio.gather(*(channel.close() for channel in channels))
        for task in list(self._retiring):
            task.cancel()
