"""A minimal pair of Nameko services for the RPC-cost scenario.

`bench_echo_<variant>.echo` returns its payload; `bench_caller_<variant>.loop` calls it n times
from inside a service (service-to-service RPC, as events calls auth) and
returns how long each call took. BENCH_RPC_CONFIRMS=0 and
BENCH_RPC_TRANSIENT=1 switch off publisher confirms and persistent delivery
for every Nameko publisher in the process, BENCH_RPC_REPLY_CONFIRMS=0 confirms
of replies only (the tuning variants).
"""
import os
import time

import eventlet
from nameko import rpc as nameko_rpc
from nameko.amqp.publish import Publisher
from nameko.rpc import RpcProxy, rpc

# Each tuning variant runs as its own pair of services on the same vhost.
SUFFIX = os.environ.get("BENCH_RPC_VARIANT", "default")

if os.environ.get("BENCH_RPC_CONFIRMS") == "0":
    Publisher.use_confirms = False
if os.environ.get("BENCH_RPC_TRANSIENT") == "1":
    Publisher.delivery_mode = 1
if os.environ.get("BENCH_RPC_REPLY_CONFIRMS") == "0":
    # Replies only: a lost reply already ends in the caller's timeout, while
    # the request keeps its confirm (that is how a call to a service with no
    # consumer becomes UnknownService).
    class _UnconfirmedPublisher(Publisher):
        use_confirms = False

    nameko_rpc.Responder.publisher_cls = _UnconfirmedPublisher


class EchoService:
    name = "bench_echo_" + SUFFIX

    @rpc
    def echo(self, payload):
        return payload


class CallerService:
    name = "bench_caller_" + SUFFIX

    echo = RpcProxy("bench_echo_" + SUFFIX)

    @rpc
    def loop(self, count, concurrency, payload):
        """Latencies (ms) of count calls made by `concurrency` green threads."""
        latencies = []

        def one_caller(calls):
            for _ in range(calls):
                started = time.perf_counter()
                self.echo.echo(payload)
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        share = [count // concurrency + (1 if index < count % concurrency else 0) for index in range(concurrency)]
        pool = eventlet.GreenPool(concurrency)
        for calls in share:
            pool.spawn(one_caller, calls)
        pool.waitall()
        return {"seconds": time.perf_counter() - started, "latencies_ms": latencies}
