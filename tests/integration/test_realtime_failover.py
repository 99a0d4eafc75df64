"""realtime when a replica stops or Redis restarts: sockets come back by
themselves and no push is lost.

- A stopping replica closes its sockets' transports (no "disconnect" packet),
  so a stock client (python-socketio here, the official JavaScript client in
  tests/js) reconnects by itself, through a balancer, to another replica.
- With Redis down, pushes are requeued rather than dropped, and once Redis is
  back each replica re-subscribes to the Socket.IO channel at once; the
  messages service's offline notifications are requeued the same way.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests
import socketio

from tests.conftest import (
    JS_DIR,
    STATE_DIR,
    TEST_PORT,
    TEST_VHOST,
    Api,
    RunningSystem,
    database_env,
    fresh_database,
    reset_vhost,
    unavailable,
)
from tests.integration.test_realtime_sockets import RealtimeReplica, _conversation, wait_for
from tests.support.processes import LoggedProcess, listening

pytestmark = pytest.mark.integration

REPLICA_PORTS = (TEST_PORT + 120, TEST_PORT + 121)
BALANCER_PORT = TEST_PORT + 122
ISOLATED_PORT = TEST_PORT + 123
PRIVATE_REDIS_PORT = TEST_PORT + 124


class Balancer:
    """A TCP balancer in front of the replicas: each connection goes to the
    first replica that accepts it, as a load balancer skips one that is gone."""

    def __init__(self, port, upstream_ports):
        self.upstream_ports = list(upstream_ports)
        self.url = f"http://127.0.0.1:{port}"
        self.connections = []
        self._server = socket.create_server(("127.0.0.1", port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            for port in self.upstream_ports:
                try:
                    upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                except OSError:
                    continue
                upstream.settimeout(None)
                self.connections.append(port)
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()
                break
            else:
                client.close()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._closed = True
        self._server.close()


class ReconnectingSocket:
    """A stock python-socketio client: reconnection on, as an app has it."""

    def __init__(self, url, token):
        self.received = []
        self.connects = 0
        self.final_disconnects = 0
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
        self.client.on("connect", self._connected)
        self.client.on("__disconnect_final", self._final)
        self.client.on("message:new", lambda data: self.received.append(data["message"]["id"]))
        self.client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)

    def _connected(self):
        self.connects += 1

    def _final(self):
        self.final_disconnects += 1

    def close(self):
        self.client.disconnect()


@pytest.fixture
def balanced_replicas(system):
    started = [RealtimeReplica(port) for port in REPLICA_PORTS]
    balancer = None
    try:
        for replica in started:
            replica.wait_until_ready()
        balancer = Balancer(BALANCER_PORT, REPLICA_PORTS)
        yield started, balancer
    finally:
        if balancer:
            balancer.close()
        for replica in started:
            replica.stop()


def test_a_socket_of_a_stopped_replica_reconnects_by_itself_and_keeps_receiving(api, balanced_replicas):
    (first, second), balancer = balanced_replicas
    ann, bob = api.register(), api.register()
    chat = _conversation(api, ann, bob)
    bob_socket = ReconnectingSocket(balancer.url, bob["access_token"])
    try:
        assert balancer.connections == [REPLICA_PORTS[0]] and bob_socket.connects == 1
        before = api.post("/messages", user=ann, json={"conversation_id": chat["id"], "body": "before"}).json()
        wait_for(lambda: bob_socket.received == [before["id"]])

        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(20) == 0
        # The client saw its transport close, not a disconnect from the server,
        # and reconnected by itself to the replica that is left.
        wait_for(lambda: bob_socket.connects == 2 and bob_socket.client.connected, timeout=20)
        assert bob_socket.final_disconnects == 0
        assert balancer.connections[-1] == REPLICA_PORTS[1]

        after = api.post("/messages", user=ann, json={"conversation_id": chat["id"], "body": "after"}).json()
        wait_for(lambda: after["id"] in bob_socket.received)
        time.sleep(0.6)  # time for any duplicate to arrive
        assert bob_socket.received == [before["id"], after["id"]]
    finally:
        bob_socket.close()


@pytest.fixture
def node_reconnect_script(js_client_dir):
    return os.path.join(js_client_dir, "reconnects.mjs")


def test_the_javascript_client_reconnects_by_itself_too(api, balanced_replicas, node_reconnect_script):
    (first, second), balancer = balanced_replicas
    ann, bob = api.register(), api.register()
    chat = _conversation(api, ann, bob)
    node = subprocess.Popen(["node", node_reconnect_script, json.dumps({"url": balancer.url,
                                                                         "token": bob["access_token"]})],
                            cwd=JS_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(node.stdout.readline() or "{}") == {"connected": 1}, node.stderr.read()
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(20) == 0
        line = json.loads(node.stdout.readline() or "{}")
        assert line.get("disconnected") == "transport close", line
        assert json.loads(node.stdout.readline() or "{}") == {"connected": 2}
        sent = api.post("/messages", user=ann, json={"conversation_id": chat["id"], "body": "still here"}).json()
        assert json.loads(node.stdout.readline() or "{}") == {"message": sent["id"]}
    finally:
        node.kill()
        node.wait()


# Redis restarts ---------------------------------------------------------------------------


class PrivateRedis:
    def __init__(self, port):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process = None

    def start(self):
        self.process = LoggedProcess(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", STATE_DIR], name="redis-server")
        self.process.wait_until_ready(lambda: listening(self.port), timeout=10, interval=0.05)

    def stop(self):
        if self.process:
            self.process.stop(grace=10)


@pytest.fixture
def system_on_private_redis(config):
    if shutil.which("redis-server") is None:
        unavailable("redis-server is needed")
    redis = PrivateRedis(PRIVATE_REDIS_PORT)
    redis.start()
    running = RunningSystem(ISOLATED_PORT, log_name="system-private-redis", env={
        "REDIS_URL": redis.url, "AMQP_URI": reset_vhost(TEST_VHOST + "_redis_restart"),
        **database_env(fresh_database("redis_restart"))})
    try:
        running.wait_until_ready()
        yield running, redis
    finally:
        running.stop()
        redis.stop()


def test_pushes_and_notifications_survive_a_redis_restart(system_on_private_redis):
    running, redis = system_on_private_redis

    api = Api(running.base_url)
    ann, bob, cat = api.register(), api.register(), api.register()
    chat = _conversation(api, ann, bob, cat, title="Outage")
    bob_socket = socketio.Client(reconnection=False)
    received = []
    bob_socket.on("message:new", lambda data: received.append(data["message"]["id"]))
    bob_socket.connect(running.base_url, auth={"token": bob["access_token"]}, transports=["websocket"])
    try:
        redis.stop()
        sent = [api.post("/messages", user=ann, json={"conversation_id": chat["id"], "body": f"m{n}"})
                for n in range(3)]
        assert all(response.status_code == 201 for response in sent), [r.text for r in sent]
        time.sleep(2)  # the events are handled, fail and are requeued meanwhile
        assert requests.get(running.base_url + "/ready", timeout=5).status_code == 503
        redis.start()
        ids = [response.json()["id"] for response in sent]
        wait_for(lambda: sorted(received) == sorted(ids), timeout=20)
        wait_for(lambda: requests.get(running.base_url + "/ready", timeout=5).status_code == 200, timeout=10)
        time.sleep(0.6)
        assert sorted(received) == sorted(ids)  # each once
        assert bob_socket.connected  # the socket never noticed
        # cat had no socket open: the offline notification was requeued, not lost.
        def cat_notifications():
            return api.get("/notifications", user=cat).json()["items"]
        wait_for(lambda: [item["data"].get("count") for item in cat_notifications()] == [3], timeout=20)
        assert [item["type"] for item in cat_notifications()] == ["message"]
    finally:
        bob_socket.disconnect()
