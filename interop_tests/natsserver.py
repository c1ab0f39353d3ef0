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

    def start(self, peers, extra=""):
        conf = [f"server_name: node{self.index}", f"listen: 127.0.0.1:{self.port}", f"http: 127.0.0.1:{self.monitor_port}"]
        if peers:
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
    """n nodes, fully routed; raises RuntimeError when they do not come up."""
    if not os.access(NATS_SERVER, os.X_OK):
        raise RuntimeError(f"{NATS_SERVER} missing (make build builds it)")
    nodes = [Node(i, tmp) for i in range(n)]
    for node in nodes:
        node.start([p for p in nodes if p is not node] if n > 1 else [])
    deadline = time.monotonic() + timeout
    # Every peer routed, and the count of route connections steady for
    # 0.3 s: an account's interest travels on one of the pooled
    # connections, which may come up after the first.
    for node in nodes:
        last, steady_since = None, None
        while True:
            if node.proc.poll() is not None:
                stop(nodes)
                raise RuntimeError(f"nats-server node{node.index} exited: {node.log_tail()}")
            try:
                peers, conns = node.routes()
                if peers >= n - 1:
                    if conns != last:
                        last, steady_since = conns, time.monotonic()
                    elif time.monotonic() - steady_since >= 0.3:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                stop(nodes)
                raise RuntimeError(f"nats-server node{node.index} not routed within {timeout:.0f} s: {node.log_tail()}")
            time.sleep(0.02)  # polling the monitor endpoint, bounded by the deadline
    return nodes


def stop(nodes):
    for node in nodes:
        node.kill()
