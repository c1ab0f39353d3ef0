"""Start nats-server nodes on loopback ports for the NATS matrix and demo.

Only 127.0.0.1 is ever bound. A cluster's routes are on 127.0.0.1 too;
`cluster()` returns once every node has a route to every other (it polls
the monitoring endpoint, with a deadline).
"""

import json
import os
import socket
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATS_SERVER = os.environ.get("GOIPC_NATS_SERVER") or os.path.join(ROOT, "build", "bin", "nats-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, index, tmp):
        self.index, self.tmp = index, tmp
        self.port, self.cluster_port, self.monitor_port = free_port(), free_port(), free_port()
        self.proc = None

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self, peers, clustered, extra=""):
        conf = [f"server_name: node{self.index}", f"listen: 127.0.0.1:{self.port}", f"http: 127.0.0.1:{self.monitor_port}"]
        if clustered:
            routes = ", ".join(f"nats-route://127.0.0.1:{p.cluster_port}" for p in peers)
            conf.append(f"cluster {{\n  name: goipc-interop\n  listen: 127.0.0.1:{self.cluster_port}\n  routes: [{routes}]\n}}")
        path = os.path.join(self.tmp, f"node{self.index}.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n" + extra)
        self.log = open(os.path.join(self.tmp, f"node{self.index}.log"), "w")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", path], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def routes(self):
        """(peers routed to, route connections): with route pooling a peer
        has several connections, which come up one after another."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/routez", timeout=2) as r:
            rz = json.load(r)
        routes = rz.get("routes") or []
        return len({x.get("remote_name") for x in routes}), len(routes)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, n=5):
        try:
            with open(os.path.join(self.tmp, f"node{self.index}.log")) as f:
                return " | ".join(f.read().splitlines()[-n:])
        except OSError:
            return ""


def cluster(n, tmp, timeout=30.0):
    """n nodes, fully routed; raises RuntimeError when they do not come up.
    A port taken between free_port() and the server's bind (other
    processes share the machine) starts it again on new ports, up to 3 times."""
    if not os.access(NATS_SERVER, os.X_OK):
        raise RuntimeError(f"{NATS_SERVER} missing (make build builds it)")
    for attempt in range(3):
        nodes = [Node(i, tmp) for i in range(n)]
        # Each node routes to the nodes before it; gossip completes the mesh
        # (nodes that all dial each other at once sometimes settle with a
        # route missing).
        for i, node in enumerate(nodes):
            node.start(nodes[:i], n > 1)
        try:
            wait_routed(nodes, timeout)
            return nodes
        except PortTaken:
            stop(nodes)
            if attempt == 2:
                raise RuntimeError("nats-server: ports kept being taken by other processes")
        except RuntimeError:
            stop(nodes)
            raise


class PortTaken(Exception):
    pass


def wait_routed(nodes, timeout):
    """Every peer routed, and each node's count of route connections steady
    for 0.3 s: an account's interest travels on one of the pooled
    connections, which may come up after the first."""
    deadline = time.monotonic() + timeout
    last = {}
    while True:
        steady = 0
        for node in nodes:
            if node.proc.poll() is not None:
                tail = node.log_tail(20)
                if "address already in use" in tail:
                    raise PortTaken(tail)
                raise RuntimeError(f"nats-server node{node.index} exited: {node.log_tail()}")
            try:
                peers, conns = node.routes()
            except OSError:
                continue
            if peers < len(nodes) - 1:
                continue
            seen = last.get(node.index)
            if seen is None or seen[0] != conns:
                last[node.index] = (conns, time.monotonic())
            elif time.monotonic() - seen[1] >= 0.3:
                steady += 1
        if steady == len(nodes):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nats-server nodes not routed within {timeout:.0f} s: "
                               + " || ".join(n.log_tail() for n in nodes))
        time.sleep(0.02)  # polling the monitor endpoints, bounded by the deadline


def stop(nodes):
    for node in nodes:
        node.kill()
