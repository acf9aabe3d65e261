"""Network namespaces that give test "nodes" their own network on this one machine: a Linux bridge in the host's
namespace (the gateway address, where slurmctld listens) and one namespace per node, joined to the bridge by a veth
pair, with an address of its own and its own loopback. A process started with `enter(name)` (nsenter --net) sees
only its node's network and the shared filesystem, as a process on another machine of a cluster with a shared
filesystem would, so each node can listen on the same fixed ports (Ray's, Slurm's) as a real node does.

Only addresses created here (and loopback) are ever contacted; everything is removed by name at the end (removing
a namespace removes its veth end, and with it the peer on the bridge). Measured on this machine (Debian 12, root, no
systemd): `ip netns exec` remounts /sys, so /sys/fs/cgroup is empty inside and slurmd refuses to start ("Unable to
initialize cgroup plugin"); `nsenter --net=/run/netns/NAME` switches the network only, and slurmd runs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeNet:
    """One node's namespace: its name, its address on the bridge, and its veth end on the bridge."""

    namespace: str
    addr: str
    host_end: str


@dataclass(frozen=True)
class Network:
    """A bridge (the host side, `gateway`) and the namespaces of the nodes joined to it."""

    bridge: str
    gateway: str
    nodes: tuple[NodeNet, ...]


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    missing = [tool for tool in ("ip", "nsenter") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} missing (apt-get install iproute2 util-linux)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no route of this machine covers (so only our own addresses are in it)."""
    out = subprocess.run(["ip", "-4", "-j", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used = []
    for route in json.loads(out or "[]"):
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(route.get("dst", ""), strict=False))
    for third in range((os.getpid() % 200) + 20, 256):
        net = ipaddress.ip_network(f"10.213.{third}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free /24 in 10.213.0.0/16 for the test network")


def create(count: int, tag: str | None = None) -> Network:
    """A bridge and `count` namespaces with addresses .11, .12, ... of a free /24 (gateway .1). Names carry `tag`
    (default: this process's pid) so concurrent sessions never share one; interface names stay within 15 chars."""
    tag = tag or str(os.getpid() % 100000)
    net = _free_subnet()
    hosts = list(net.hosts())
    bridge = f"tpbr{tag}"
    gateway = str(hosts[0])
    made: list[str] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(f"link:{bridge}")
        _ip("addr", "add", f"{gateway}/{net.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        nodes = []
        for i in range(count):
            ns, host_end, node_end = f"tpns{tag}n{i}", f"tph{tag}n{i}", f"tpv{tag}n{i}"
            addr = str(hosts[10 + i])
            _ip("netns", "add", ns)
            made.append(f"netns:{ns}")
            _ip("link", "add", host_end, "type", "veth", "peer", "name", node_end)
            made.append(f"link:{host_end}")
            _ip("link", "set", node_end, "netns", ns)
            _ip("link", "set", host_end, "master", bridge)
            _ip("link", "set", host_end, "up")
            _ip("-n", ns, "addr", "add", f"{addr}/{net.prefixlen}", "dev", node_end)
            _ip("-n", ns, "link", "set", node_end, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            nodes.append(NodeNet(ns, addr, host_end))
    except BaseException:
        _remove(made)
        raise
    return Network(bridge=bridge, gateway=gateway, nodes=tuple(nodes))


def enter(node: NodeNet) -> list[str]:
    """The argv prefix that runs a command in the node's network (and nowhere else different)."""
    return ["nsenter", f"--net=/run/netns/{node.namespace}", "--"]


def remove(network: Network) -> None:
    """Delete the namespaces, the veth pairs and the bridge, by name (the kernel removes a namespace's veth pair
    only once the namespace is freed: deleted here, not waited for)."""
    _remove(
        [f"link:{network.bridge}"]
        + [f"{kind}:{name}" for n in network.nodes for kind, name in (("link", n.host_end), ("netns", n.namespace))]
    )


def _remove(made: list[str]) -> None:
    for item in reversed(made):
        kind, name = item.split(":", 1)
        argv = ["ip", "netns", "del", name] if kind == "netns" else ["ip", "link", "del", name]
        subprocess.run(argv, capture_output=True, timeout=30)
