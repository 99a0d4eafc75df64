"""A steady mixed load through the load balancer, and what the clients were told.

Every call is counted: sent (attempts), failed (attempts that did not get the
expected answer), retried (attempts repeated by the client, with the same ids)
and lost (calls that never got their answer within the retry budget). Writes
carry their own ids (message `client_id`s; joins and follows are idempotent by
nature), so a retry can never create a second copy.
"""
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import requests
import socketio

PASSWORD = "correct horse battery"


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self.sent = Counter()
        self.failed = Counter()
        self.retried = Counter()
        self.lost = Counter()
        self.statuses = Counter()
        self.failures = []  # (t, kind, status or exception), a sample

    def record(self, kind, outcome, ok):
        with self._lock:
            self.sent[kind] += 1
            self.statuses[str(outcome)] += 1
            if not ok:
                self.failed[kind] += 1
                if len(self.failures) < 50:
                    self.failures.append((round(time.time(), 3), kind, str(outcome)[:200]))

    def summary(self):
        with self._lock:
            return {
                "requests_sent": sum(self.sent.values()),
                "requests_failed": sum(self.failed.values()),
                "requests_retried": sum(self.retried.values()),
                "requests_lost": sum(self.lost.values()),
                "by_kind": {kind: {"sent": self.sent[kind], "failed": self.failed[kind],
                                   "retried": self.retried[kind], "lost": self.lost[kind]}
                            for kind in sorted(self.sent)},
                "statuses": dict(self.statuses),
                "failure_sample": self.failures[:20],
            }


class Client:
    """One user's HTTP client; `call` retries with the same body (same ids)."""

    def __init__(self, base_url, stats, retry_budget_seconds):
        self.base_url = base_url
        self.stats = stats
        self.retry_budget = retry_budget_seconds
        self.http = requests.Session()

    def call(self, kind, method, path, token=None, expect=(200, 201, 204), stop=None, **kwargs):
        headers = {"Authorization": "Bearer " + token} if token else {}
        deadline = time.monotonic() + self.retry_budget
        attempt = 0
        while True:
            if attempt:
                self.stats.retried[kind] += 1
            attempt += 1
            try:
                response = self.http.request(method, self.base_url + path, headers=headers, timeout=20, **kwargs)
                outcome, ok = response.status_code, response.status_code in expect
            except requests.RequestException as exc:
                response, outcome, ok = None, type(exc).__name__, False
            self.stats.record(kind, outcome, ok)
            if ok:
                return response
            if time.monotonic() > deadline:
                self.stats.lost[kind] += 1
                return None
            time.sleep(min(1.0, 0.1 * attempt))


class SocketClient:
    """A user's Socket.IO client over websocket through the load balancer.

    It records every `message:new` it receives and the intervals during which
    it was connected, so a message it missed can be told apart from one it
    could not have received (it was reconnecting at the time)."""

    def __init__(self, base_url, user):
        self.user = user
        self.received = defaultdict(list)  # message id -> [receive times]
        self.intervals = []  # [connected_at, disconnected_at or None]
        self.connects = 0
        self.server_disconnects = 0
        self.closing = False
        self._lock = threading.Lock()
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1,
                                      randomization_factor=0.2)
        self.client.on("connect", self._connected)
        self.client.on("disconnect", self._disconnected)
        self.client.on("message:new", self._message)
        self.base_url = base_url

    def connect(self):
        self.client.connect(self.base_url, auth={"token": self.user["access_token"]},
                            transports=["websocket"], socketio_path="socket.io", wait_timeout=10)

    def _connected(self):
        with self._lock:
            self.connects += 1
            self.intervals.append([time.time(), None])

    def _disconnected(self, reason=None):
        with self._lock:
            if self.intervals and self.intervals[-1][1] is None:
                self.intervals[-1][1] = time.time()
        if reason == self.client.reason.SERVER_DISCONNECT and not self.closing:
            # Socket.IO clients (this one, and the JavaScript, Swift and
            # Kotlin ones) do not reconnect by themselves after the server
            # disconnected them; an app that wants to stay online does.
            with self._lock:
                self.server_disconnects += 1
            threading.Thread(target=self._reconnect, daemon=True).start()

    def _reconnect(self):
        deadline = time.monotonic() + 60
        delay = 0.2
        while not self.closing and time.monotonic() < deadline:
            time.sleep(delay)
            try:
                self.connect()
                return
            except Exception:
                delay = min(1.0, delay * 2)

    def _message(self, data):
        message = (data or {}).get("message") or {}
        with self._lock:
            self.received[message.get("id")].append(time.time())

    def connected_throughout(self, start, end):
        with self._lock:
            return any(began <= start and (ended is None or ended >= end) for began, ended in self.intervals)

    def close(self):
        self.closing = True
        try:
            self.client.disconnect()
        except Exception:
            pass


class World:
    """The users, the event and the conversations the load works on."""

    def __init__(self, base_url, users=6, group_size=3):
        self.base_url = base_url
        setup = Client(base_url, Stats(), retry_budget_seconds=60)
        self.users = []
        for _ in range(users):
            name = "r" + uuid.uuid4().hex[:12]
            response = setup.call("setup", "POST", "/auth/register",
                                  json={"email": name + "@example.com", "username": name, "password": PASSWORD})
            if response is None:
                raise RuntimeError("could not register the load's users")
            answer = response.json()
            self.users.append({"id": answer["user"]["id"], "username": name, "access_token": answer["access_token"]})
        self.event_id = None
        organizer = self.users[0]
        starts = datetime.now(UTC) + timedelta(days=7)
        response = setup.call("setup", "POST", "/events", token=organizer["access_token"], json={
            "title": "Reliability drill", "starts_at": starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "visibility": "public"})
        if response is not None:
            self.event_id = response.json()["id"]
        self.conversations = []
        for first in range(0, users - group_size + 1, group_size):
            members = self.users[first:first + group_size]
            response = setup.call("setup", "POST", "/messages/conversations", token=members[0]["access_token"],
                                  json={"member_ids": [member["id"] for member in members[1:]],
                                        "title": "drill"})
            if response is None:
                raise RuntimeError("could not create the load's conversations")
            self.conversations.append({"id": response.json()["id"], "members": members})
        self.sockets = {user["id"]: SocketClient(base_url, user) for user in self.users}
        for client in self.sockets.values():
            client.connect()

    def close(self):
        for client in self.sockets.values():
            client.close()


class Load:
    """Worker threads that run until `stop()` or their iteration cap."""

    def __init__(self, world, stats, retry_budget_seconds=60, pause=0.05, max_iterations=100000):
        self.world = world
        self.stats = stats
        self.retry_budget = retry_budget_seconds
        self.pause = pause
        self.max_iterations = max_iterations
        self.acked = []  # {id, client_id, conversation_id, sent_at, acked_at}
        self._acked_lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = []

    def start(self):
        workers = [self._auth_worker, self._auth_worker, self._events_worker, self._reads_worker]
        workers += [self._messages_worker] * len(self.world.conversations) * 2
        for index, worker in enumerate(workers):
            thread = threading.Thread(target=worker, args=(index,), name=f"load-{index}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout=90):
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)

    def _loop(self, body):
        iterations = 0
        while not self._stop.is_set() and iterations < self.max_iterations:
            body(iterations)
            iterations += 1
            time.sleep(self.pause)

    def _client(self):
        return Client(self.world.base_url, self.stats, self.retry_budget)

    def _auth_worker(self, index):
        client = self._client()
        users = self.world.users
        me = users[index % len(users)]
        other = users[(index + 1) % len(users)]

        def body(i):
            if i % 5 == 0:
                client.call("auth.login", "POST", "/auth/login", json={"login": me["username"], "password": PASSWORD})
            client.call("auth.me", "GET", "/auth/me", token=me["access_token"])
            client.call("auth.user", "GET", f"/users/{other['id']}", token=me["access_token"])
            client.call("auth.follow", "POST", f"/users/{other['id']}/follow", token=me["access_token"])

        self._loop(body)

    def _events_worker(self, index):
        client = self._client()
        users = self.world.users
        event_id = self.world.event_id

        def body(i):
            user = users[i % len(users)]
            if event_id:
                client.call("events.join", "POST", f"/events/{event_id}/participants", token=user["access_token"])
                client.call("events.get", "GET", f"/events/{event_id}", token=user["access_token"])
            now = datetime.now(UTC)
            client.call("events.calendar", "GET", "/calendar", token=user["access_token"], params={
                "from": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "to": (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")})

        self._loop(body)

    def _reads_worker(self, index):
        client = self._client()
        users = self.world.users

        def body(i):
            user = users[i % len(users)]
            client.call("messages.conversations", "GET", "/messages/conversations", token=user["access_token"])
            conversation = self.world.conversations[i % len(self.world.conversations)]
            member = conversation["members"][i % len(conversation["members"])]
            client.call("messages.history", "GET", f"/messages/conversations/{conversation['id']}/messages",
                        token=member["access_token"], params={"limit": 5})

        self._loop(body)

    def _messages_worker(self, index):
        client = self._client()
        conversations = self.world.conversations
        conversation = conversations[index % len(conversations)]
        sender = conversation["members"][index % len(conversation["members"])]

        def body(i):
            client_id = str(uuid.uuid4())
            sent_at = time.time()
            response = client.call("messages.send", "POST", "/messages", token=sender["access_token"], json={
                "conversation_id": conversation["id"], "client_id": client_id,
                "body": f"drill {index}-{i} {random.randint(0, 10**6)}"})
            if response is not None:
                with self._acked_lock:
                    self.acked.append({"id": response.json()["id"], "client_id": client_id,
                                       "conversation_id": conversation["id"], "sender_id": sender["id"],
                                       "sent_at": sent_at, "acked_at": time.time()})

        self._loop(body)


def delivery_report(world, acked, checked_at):
    """Each acknowledged message against every member's socket."""
    members = {conversation["id"]: conversation["members"] for conversation in world.conversations}
    expected = delivered = missed_while_reconnecting = lost = duplicated = 0
    lost_sample = []
    for message in acked:
        for member in members[message["conversation_id"]]:
            socket_client = world.sockets[member["id"]]
            receipts = socket_client.received.get(message["id"], [])
            expected += 1
            if receipts:
                delivered += 1
                duplicated += len(receipts) > 1
            elif socket_client.connected_throughout(message["sent_at"], checked_at):
                lost += 1
                if len(lost_sample) < 10:
                    lost_sample.append({"message": message["id"], "recipient": member["id"]})
            else:
                missed_while_reconnecting += 1
    return {"deliveries_expected": expected, "deliveries_received": delivered, "deliveries_lost": lost,
            "deliveries_duplicated": duplicated, "missed_while_reconnecting": missed_while_reconnecting,
            "lost_sample": lost_sample}


def wait_for_deliveries(world, acked, timeout):
    """Until every message reached every member whose socket stayed connected."""
    deadline = time.monotonic() + timeout
    while True:
        report = delivery_report(world, acked, time.time())
        if report["deliveries_lost"] == 0 or time.monotonic() > deadline:
            return report
        time.sleep(0.3)
