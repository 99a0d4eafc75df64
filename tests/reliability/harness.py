"""Run the reliability scenarios and write down what the clients saw.

    .venv/bin/python -m tests.reliability.harness [--quick] [--json FILE] [--report docs/RELIABILITY.md]

Starts private PostgreSQL, Redis and RabbitMQ on loopback ports 4601-4605,
two replicas of every service and of realtime (ports from 4610) behind nginx
on 127.0.0.1:4600, drives a steady mixed load through nginx and, during it,
runs the six scenarios in order. After each one it checks the database and
the sockets against what the clients were told. Everything it starts is
stopped when it ends, failed or not.
"""
import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from tests.reliability.cascade import AuthEventsDrill
from tests.reliability.cluster import ROOT, Cluster, PortPool
from tests.reliability.load import Load, Stats, World, wait_for_deliveries
from tests.reliability.stores import PrivatePostgres, PrivateRabbit, PrivateRedis
from tests.support.mail import MailSink

LB_PORT, PG_PORT, REDIS_PORT, AMQP_PORT, DIST_PORT, EPMD_PORT = 4600, 4601, 4602, 4603, 4604, 4605
MAIL_PORT = 4606
REPLICA_PORTS = (4610, 4699)
OUTBOX_SCHEMAS = ("auth", "events", "messages")
SCENARIOS = ("1-sigterm", "2-kill9", "3-rolling-update", "4-rabbitmq-restart", "5-postgres-redis-restart",
             "6-postgres-down-under-auth-events")

PROFILES = {
    # warm-up and settle seconds, outage seconds, SIGTERM every replica or one per service
    "quick": {"warmup": 2.0, "settle": 2.0, "outage": 3.0, "every_replica": False, "pause": 0.15},
    "full": {"warmup": 5.0, "settle": 5.0, "outage": 8.0, "every_replica": True, "pause": 0.02},
}


class ScenarioAborted(Exception):
    pass


class Harness:
    def __init__(self, profile, keep=False):
        self.profile = PROFILES[profile]
        self.profile_name = profile
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="lifytp-reliability-")
        os.chmod(self.dir, 0o755)  # PostgreSQL runs as its own user
        self.pg = PrivatePostgres(self.dir, PG_PORT)
        self.redis = PrivateRedis(self.dir, REDIS_PORT)
        self.rabbit = PrivateRabbit(self.dir, AMQP_PORT, DIST_PORT, EPMD_PORT)
        # Registrations send mail: a sink takes it, as in make run.
        self.mail = MailSink(MAIL_PORT, os.path.join(self.dir, "mail"), os.path.join(self.dir, "mail-sink.log"))
        self.env = dict(
            os.environ,
            LIFYTP_CONFIG=os.path.join(ROOT, "config.yaml"),
            AMQP_URI=self.rabbit.url,
            AUTH_DATABASE_URL=self.pg.url,
            EVENTS_DATABASE_URL=self.pg.url,
            MESSAGES_DATABASE_URL=self.pg.url,
            REDIS_URL=self.redis.url,
            JWT_PRIVATE_KEY_PATH=os.path.join(self.dir, "keys", "jwt-private.pem"),
            JWT_PUBLIC_KEY_PATH=os.path.join(self.dir, "keys", "jwt-public.pem"),
            MEDIA_LOCAL_DIR=os.path.join(self.dir, "media"),
            BCRYPT_ROUNDS="4",
            RPC_TIMEOUT_SECONDS="3",
            ACCESS_TOKEN_TTL_SECONDS="7200",
            ACCESS_TOKEN_MAX_AGE_SECONDS="7200",
            # The load registers, and logs in again and again, from one address.
            LOGIN_MAX_FAILURES_PER_ADDRESS="100000",
            LOGIN_MAX_ATTEMPTS_PER_ADDRESS="100000",
            LOGIN_MAX_ATTEMPTS_PER_ACCOUNT="100000",
            REGISTER_MAX_PER_ADDRESS="100000",
            AMQP_HEARTBEAT="10",
            SMTP_URL=self.mail.url,
            LOG_LEVEL="WARNING",
            ACCESS_LOG_LEVEL="WARNING",
        )
        self.cluster = None
        self.world = None
        self.engine = None
        self.results = []

    # Setting up and tearing down ----------------------------------------------------

    def start(self):
        started = time.monotonic()
        self.pg.init()
        self.redis.init()
        self.rabbit.init()
        self.mail.start()
        for module in ("services.shared.tokens", "services.shared.migrations"):
            subprocess.run([sys.executable, "-W", "ignore", "-m", module], cwd=ROOT, env=self.env,
                           check=True, capture_output=True)
        self.engine = create_engine(self.pg.url, pool_pre_ping=True)
        self.cluster = Cluster(self.dir, self.env, LB_PORT, PortPool(*REPLICA_PORTS))
        self.cluster.start(per_service=2)
        self.world = World(self.cluster.lb.base_url)
        return time.monotonic() - started

    def close(self):
        for step in (lambda: self.world and self.world.close(),
                     lambda: self.cluster and self.cluster.stop(),
                     lambda: self.engine and self.engine.dispose(),
                     self.rabbit.kill, self.redis.kill, self.pg.kill, self.mail.stop):
            try:
                step()
            except Exception as exc:  # tear down everything else regardless
                print("cleanup step failed:", exc, file=sys.stderr)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # One scenario ----------------------------------------------------------------------

    def run_scenario(self, name, title, action, allow_failed=False, allowed_failures=("503",)):
        print(f"== {name}: {title}", flush=True)
        stats = Stats()
        load = Load(self.world, stats, retry_budget_seconds=60, pause=self.profile["pause"])
        lb_offset = self.cluster.lb.log_size()
        sockets_before = self.socket_counts()
        started = time.monotonic()
        load.start()
        error = None
        try:
            time.sleep(self.profile["warmup"])
            details = action() or {}
            time.sleep(self.profile["settle"])
        except Exception as exc:
            details, error = {}, f"{type(exc).__name__}: {exc}"[:2000]
        stopped = load.stop()
        deliveries = wait_for_deliveries(self.world, load.acked, timeout=30)
        stored = self.stored(load.acked)
        outbox = self.wait_outbox_drained(timeout=30)
        result = {
            "scenario": name,
            "title": title,
            "seconds": round(time.monotonic() - started, 1),
            **stats.summary(),
            "load_balancer": self.cluster.lb.log_since(lb_offset),
            "messages_acknowledged": len(load.acked),
            **stored,
            **{key: value for key, value in deliveries.items() if key != "lost_sample"},
            "outbox_pending_after": outbox,
            "replicas_alive": all(replica.alive() for replica in self.cluster.all_replicas()),
            "load_stopped_by_itself": stopped,
            "sockets": {key: value - sockets_before[key] for key, value in self.socket_counts().items()},
            "details": details,
            "lost_sample": deliveries["lost_sample"],
        }
        result["problems"] = self.problems(result, allow_failed, allowed_failures)
        if error:
            result["problems"].insert(0, "the scenario could not complete: " + error)
        result["passed"] = not result["problems"]
        self.results.append(result)
        print(json.dumps({key: result[key] for key in (
            "seconds", "requests_sent", "requests_failed", "requests_retried", "requests_lost",
            "messages_acknowledged", "messages_stored", "deliveries_received", "deliveries_lost",
            "missed_while_reconnecting", "problems")}), flush=True)
        if error:
            raise ScenarioAborted(error)
        return result

    def socket_counts(self):
        sockets = self.world.sockets.values()
        return {"connects": sum(socket.connects for socket in sockets),
                "server_disconnects": sum(socket.server_disconnects for socket in sockets)}

    @staticmethod
    def problems(result, allow_failed, allowed_failures):
        problems = []
        if result["requests_failed"] and not allow_failed:
            problems.append(f"{result['requests_failed']} requests failed")
        if allow_failed:
            unexpected = {status: count for status, count in result["statuses"].items()
                          if not status.startswith("2") and status not in allowed_failures}
            if unexpected:
                problems.append(f"unexpected answers {unexpected}")
        if result["requests_lost"]:
            problems.append(f"{result['requests_lost']} requests never succeeded")
        if result["messages_missing"]:
            problems.append(f"{result['messages_missing']} acknowledged messages missing")
        if result["messages_duplicated"]:
            problems.append(f"{result['messages_duplicated']} messages stored twice")
        if result["messages_mismatched"]:
            problems.append(f"{result['messages_mismatched']} client ids answered with another message")
        if result["deliveries_lost"]:
            problems.append(f"{result['deliveries_lost']} deliveries lost")
        if result["deliveries_duplicated"]:
            problems.append(f"{result['deliveries_duplicated']} deliveries duplicated")
        if any(result["outbox_pending_after"].values()):
            problems.append(f"outbox not drained: {result['outbox_pending_after']}")
        if not result["replicas_alive"]:
            problems.append("a replica died")
        if result["messages_acknowledged"] == 0:
            problems.append("no message was acknowledged")
        return problems

    # Checks against the database ---------------------------------------------------------

    def stored(self, acked):
        by_client_id = {message["client_id"]: message["id"] for message in acked}
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT client_id, array_agg(id::text) FROM messages.messages "
                "WHERE client_id = ANY(:ids) GROUP BY client_id"), {"ids": list(by_client_id)}).all()
        found = {client_id: ids for client_id, ids in rows}
        return {
            "messages_stored": sum(len(ids) for ids in found.values()),
            "messages_missing": sum(1 for client_id in by_client_id if client_id not in found),
            "messages_duplicated": sum(1 for ids in found.values() if len(ids) > 1),
            "messages_mismatched": sum(1 for client_id, message_id in by_client_id.items()
                                       if client_id in found and found[client_id] != [message_id]),
        }

    def outbox_pending(self):
        pending = {}
        with self.engine.connect() as conn:
            for schema in OUTBOX_SCHEMAS:
                try:
                    pending[schema] = conn.scalar(text(
                        f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'))
                except Exception:
                    conn.rollback()
        return pending

    def wait_outbox_drained(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            pending = self.outbox_pending()
            if not any(pending.values()) or time.monotonic() > deadline:
                return pending
            time.sleep(0.3)

    def idempotence(self):
        """Joins and follows were repeated hundreds of times: one row each."""
        ids = [user["id"] for user in self.world.users]
        with self.engine.connect() as conn:
            participants = conn.scalar(text(
                "SELECT count(*) FROM events.participants WHERE event_id = :event"), {"event": self.world.event_id})
            follows = conn.scalar(text(
                "SELECT count(*) FROM auth.follows WHERE follower_id::text = ANY(:ids)"), {"ids": ids})
        return {"event_participants": participants, "users": len(ids), "auth_follows": follows}

    # The scenarios --------------------------------------------------------------------------

    def victims(self):
        if self.profile["every_replica"]:
            return list(self.cluster.all_replicas())
        return [self.cluster.replicas[service][0] for service in self.cluster.services]

    def sigterm_each(self):
        stops = []
        for victim in self.victims():
            replacement = self.cluster.start_replica(victim.service)
            code, seconds = victim.terminate(grace=30)
            self.cluster.retire(victim)
            replacement.wait_until_ready(timeout=90)
            self.cluster.wait_routed(replacement)
            stops.append({"replica": victim.name, "exit_code": code, "stop_seconds": round(seconds, 2)})
        return {"stopped": stops}

    def kill_each(self):
        kills = []
        for victim in self.victims():
            victim.kill()
            self.cluster.retire(victim)
            replacement = self.cluster.start_replica(victim.service)
            replacement.wait_until_ready(timeout=90)
            self.cluster.wait_routed(replacement)
            kills.append(victim.name)
            time.sleep(1.0)
        return {"killed": kills}

    def rolling_update(self):
        """Every Deployment rolls at once, as `kubectl apply` of a new image
        does; within one, replicas are replaced one by one (maxSurge 1,
        maxUnavailable 0): the new one ready and routed to before the old one
        gets SIGTERM."""
        steps, errors = [], []

        def roll(service):
            try:
                for old in list(self.cluster.replicas[service]):
                    new = self.cluster.start_replica(service)
                    ready_after = new.wait_until_ready(timeout=120)
                    self.cluster.wait_routed(new)
                    code, seconds = old.terminate(grace=30)
                    self.cluster.retire(old)
                    steps.append({"old": old.name, "new": new.name, "new_ready_seconds": round(ready_after, 1),
                                  "old_exit_code": code})
            except Exception as exc:
                errors.append(f"{service}: {exc}")

        threads = [threading.Thread(target=roll, args=(service,)) for service in self.cluster.services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError("; ".join(errors))
        return {"replaced": steps}

    def wait_all_ready(self, timeout=90):
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if all(replica.ready() for replica in self.cluster.all_replicas()):
                return round(time.monotonic() - started, 1)
            time.sleep(0.3)
        raise RuntimeError("replicas did not recover by themselves: " + ", ".join(
            replica.name for replica in self.cluster.all_replicas() if not replica.ready()))

    def restart_store(self, store, label):
        pids = {replica.name: replica.process.pid for replica in self.cluster.all_replicas()}
        started = time.monotonic()
        store.stop()
        stopped = time.monotonic()
        time.sleep(self.profile["outage"])
        store.start()
        down = time.monotonic() - stopped
        recovered = self.wait_all_ready()
        same = pids == {replica.name: replica.process.pid for replica in self.cluster.all_replicas()}
        return {"store": label, "down_seconds": round(down, 1), "restart_seconds": round(time.monotonic() - started, 1),
                "all_ready_after_seconds": recovered, "no_replica_restarted": same}

    def restart_rabbit(self):
        return self.restart_store(self.rabbit, "rabbitmq")

    def restart_pg_and_redis(self):
        return {"postgresql": self.restart_store(self.pg, "postgresql"),
                "redis": self.restart_store(self.redis, "redis")}

    def run(self):
        self.setup_seconds = round(self.start(), 1)
        print(f"system up in {self.setup_seconds:.0f}s", flush=True)
        try:
            self.run_scenarios()
        except ScenarioAborted:
            pass
        return self.figures()

    def figures(self):
        return {
            "profile": self.profile_name,
            "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "setup_seconds": getattr(self, "setup_seconds", None),
            "services": self.cluster.services if self.cluster else [],
            "users": len(self.world.users) if self.world else 0,
            "conversations": len(self.world.conversations) if self.world else 0,
            "nginx_reloads": self.cluster.lb.reloads if self.cluster else 0,
            "idempotence": self.idempotence() if self.world else {},
            "scenarios": self.results,
            "passed": len(self.results) == len(SCENARIOS) and all(result["passed"] for result in self.results),
        }

    def run_scenarios(self):
        which = "every replica" if self.profile["every_replica"] else "one replica of each service"
        self.run_scenario("1-sigterm", f"SIGTERM {which} in turn, each replaced", self.sigterm_each)
        self.run_scenario("2-kill9", f"kill -9 {which} in turn, each replaced", self.kill_each,
                          allow_failed=True, allowed_failures=())
        self.run_scenario("3-rolling-update", "Rolling update of every replica, new one ready before old one stops",
                          self.rolling_update)
        self.run_scenario("4-rabbitmq-restart", "Restart RabbitMQ", self.restart_rabbit, allow_failed=True)
        self.run_scenario("5-postgres-redis-restart", "Restart PostgreSQL, then Redis", self.restart_pg_and_redis,
                          allow_failed=True)
        self.run_scenario("6-postgres-down-under-auth-events",
                          "PostgreSQL down while auth's user_deleted and user_followed reach events and messages",
                          lambda: AuthEventsDrill(self).run(), allow_failed=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the CI variant: shorter outages, one replica each")
    parser.add_argument("--json", help="write the figures here (JSON)")
    parser.add_argument("--report", help="rewrite the figures section of this markdown file (docs/RELIABILITY.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) afterwards")
    args = parser.parse_args(argv)

    def stop_on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_signal)
    # The ports are fixed: two runs on one machine (two test suites at once)
    # take turns instead of colliding.
    lock = open(os.path.join(tempfile.gettempdir(), "lifytp-reliability.lock"), "w")
    deadline = time.monotonic() + 1200
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise SystemExit("another reliability run holds the ports") from None
            time.sleep(1)
    harness = Harness("quick" if args.quick else "full", keep=args.keep)
    started = time.monotonic()
    figures = None
    try:
        figures = harness.run()
    finally:
        if figures is None:
            try:
                figures = harness.figures()
            except Exception:
                figures = {"scenarios": harness.results, "passed": False}
            figures["passed"] = False
        if not figures["passed"]:
            harness.keep = True
            print("logs kept in", harness.dir, file=sys.stderr)
        harness.close()
    figures["total_seconds"] = round(time.monotonic() - started, 1)
    figures["command"] = ".venv/bin/python -m tests.reliability.harness" + (" --quick" if args.quick else "")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    if args.report:
        from tests.reliability.report import write_report

        write_report(args.report, figures)
    print("PASSED" if figures["passed"] else "FAILED", f"in {figures['total_seconds']:.0f}s", flush=True)
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
