"""Scenario 6: PostgreSQL goes down while auth's user_deleted and user_followed
events are on their way to the events and messages services.

The events must not be acknowledged while their handlers fail: once
PostgreSQL is back, every deleted user's events are cancelled, their seats,
posts and follow edges gone in events and their notifications gone in
messages, and the follow replica in events holds every new follow.

To put the events in flight deterministically, the consumers are frozen
(SIGSTOP) while auth records and publishes them, PostgreSQL is stopped, and
the consumers are thawed into the outage: their first attempt at each event
fails on the database.
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.reliability.cluster import ROOT
from tests.reliability.load import PASSWORD, Client, Stats

VICTIMS, FANS = 3, 3
CONSUMERS = ("events", "messages")
DEACTIVATE = """
import json, sys
from nameko.standalone.rpc import ClusterRpcProxy
with ClusterRpcProxy({"AMQP_URI": sys.argv[1]}, timeout=30) as rpc:
    print(json.dumps([rpc.auth.deactivate_user(user_id) for user_id in sys.argv[2:]]))
"""


class AuthEventsDrill:
    def __init__(self, harness):
        self.harness = harness
        self.client = Client(harness.world.base_url, Stats(), retry_budget_seconds=60)
        self.victims, self.fans, self.new_follows = [], [], []

    def run(self):
        self.prepare()
        consumers = [replica for replica in self.harness.cluster.all_replicas() if replica.service in CONSUMERS]
        pids = {replica.name: replica.process.pid for replica in self.harness.cluster.all_replicas()}
        for replica in consumers:
            os.kill(replica.process.pid, signal.SIGSTOP)
        try:
            self.publish_from_auth()
            pg = self.harness.pg
            pg.stop()
            stopped = time.monotonic()
        finally:
            for replica in consumers:
                os.kill(replica.process.pid, signal.SIGCONT)
        time.sleep(self.harness.profile["outage"])
        pg.start()
        down = time.monotonic() - stopped
        recovered = self.harness.wait_all_ready()
        left = self.wait_cascade(timeout=60)
        requeued = self.requeued(consumers)
        same = pids == {replica.name: replica.process.pid for replica in self.harness.cluster.all_replicas()}
        details = {"store": "postgresql", "down_seconds": round(down, 1), "all_ready_after_seconds": recovered,
                   "no_replica_restarted": same, "users_deleted": len(self.victims),
                   "follows_made": len(self.new_follows), "events_requeued_while_down": requeued,
                   "left_after_cascade": left}
        if any(left.values()):
            raise RuntimeError(f"the cascade did not complete: {left}")
        if not requeued:
            raise RuntimeError("no handler met the outage: the drill proved nothing")
        return details

    # Before: users with events, seats, follow edges and notifications ----------------

    def prepare(self):
        for group, count in ((self.victims, VICTIMS), (self.fans, FANS)):
            for _ in range(count):
                group.append(self.register())
        starts = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for victim in self.victims:
            self.call("POST", "/events", victim, json={"title": "Doomed", "starts_at": starts, "visibility": "public"})
            self.call("POST", f"/events/{self.harness.world.event_id}/participants", victim)
            for fan in self.fans:
                self.call("POST", f"/users/{victim['id']}/follow", fan)
                self.call("POST", f"/users/{fan['id']}/follow", victim)
        self.wait(lambda: self.count("SELECT count(*) FROM messages.notifications WHERE user_id::text = ANY(:ids)",
                                     [victim["id"] for victim in self.victims]) >= VICTIMS * FANS, "notifications")
        self.wait(lambda: self.count("SELECT count(*) FROM events.follows WHERE followee_id::text = ANY(:ids)",
                                     [victim["id"] for victim in self.victims]) >= VICTIMS * FANS, "follow replica")

    def register(self):
        name = "c" + uuid.uuid4().hex[:12]
        answer = self.call("POST", "/auth/register", None,
                           json={"email": name + "@example.com", "username": name, "password": PASSWORD}).json()
        return {"id": answer["user"]["id"], "access_token": answer["access_token"]}

    def call(self, method, path, user, **kwargs):
        response = self.client.call("drill", method, path, token=user and user["access_token"], **kwargs)
        if response is None:
            raise RuntimeError(f"{method} {path} never succeeded")
        return response

    # While the consumers are frozen: auth records and publishes -----------------------

    def publish_from_auth(self):
        for index, fan in enumerate(self.fans):
            other = self.fans[(index + 1) % len(self.fans)]
            self.call("POST", f"/users/{other['id']}/follow", fan)
            self.new_follows.append((fan["id"], other["id"]))
        done = subprocess.run([sys.executable, "-W", "ignore", "-c", DEACTIVATE, self.harness.rabbit.url,
                               *[victim["id"] for victim in self.victims]],
                              cwd=ROOT, env=self.harness.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or json.loads(done.stdout) != [True] * len(self.victims):
            raise RuntimeError("deactivate_user failed: " + done.stderr[-2000:])
        self.wait(lambda: self.count("SELECT count(*) FROM auth.outbox WHERE published_at IS NULL") == 0,
                  "auth's outbox to publish")

    # After: what must be gone, and what must be there ------------------------------------

    def wait_cascade(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = self.leftovers()
            if not any(left.values()) or time.monotonic() > deadline:
                return left
            time.sleep(0.5)

    def leftovers(self):
        victims = [victim["id"] for victim in self.victims]
        try:
            left = {
                "active_events": self.count(
                    "SELECT count(*) FROM events.events WHERE organizer_id::text = ANY(:ids) AND status = 'active'",
                    victims),
                "seats": self.count("SELECT count(*) FROM events.participants WHERE user_id::text = ANY(:ids)",
                                    victims),
                "follow_edges": self.count(
                    "SELECT count(*) FROM events.follows "
                    "WHERE follower_id::text = ANY(:ids) OR followee_id::text = ANY(:ids)", victims),
                "notifications": self.count(
                    "SELECT count(*) FROM messages.notifications WHERE user_id::text = ANY(:ids)", victims),
            }
            replica = {(str(follower), str(followee)) for follower, followee in self.rows(
                "SELECT follower_id, followee_id FROM events.follows WHERE follower_id::text = ANY(:ids)",
                [fan["id"] for fan in self.fans])}
        except Exception as exc:  # PostgreSQL still starting
            return {"database": type(exc).__name__}
        left["follows_missing_from_replica"] = len(set(self.new_follows) - replica)
        return left

    def requeued(self, consumers):
        """Events whose handler met the outage and were put back (from the replicas' logs)."""
        count = 0
        for replica in consumers:
            with open(replica.log_path, errors="replace") as handle:
                count += sum(1 for line in handle if "auth.user_" in line and "the event is requeued" in line)
        return count

    def count(self, sql, ids=None):
        with self.harness.engine.connect() as conn:
            return conn.scalar(text(sql), {"ids": ids or []})

    def rows(self, sql, ids):
        with self.harness.engine.connect() as conn:
            return conn.execute(text(sql), {"ids": ids}).all()

    @staticmethod
    def wait(check, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.2)
