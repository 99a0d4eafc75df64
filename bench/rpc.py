"""RPC cost: Nameko RPC against a raw kombu request/reply, same broker, same payload.

    python -m bench.rpc raw-server AMQP_URI [safe]
    python -m bench.rpc raw-client AMQP_URI COUNT [safe]   (safe: confirms, persistent, durable queue)
    python -m bench.rpc nameko-client AMQP_URI COUNT [VARIANT]   (ClusterRpcProxy, reused)
    python -m bench.rpc service-loop AMQP_URI COUNT CONCURRENCY [VARIANT]  (bench_caller -> bench_echo)

Each client prints {"seconds", "latencies_ms"} as JSON. The raw pair is what
Nameko does at its core: publish to a queue with reply_to and a correlation
id, a server consumes, publishes the answer to the reply queue.
"""
import json
import sys
import time
import uuid

RAW_QUEUE = "bench-raw-rpc"
# The same JSON as an auth.get_users call for one feed page: ten user ids.
PAYLOAD = {"ids": [str(uuid.UUID(int=index * 7919 + 1)) for index in range(10)], "fields": ["id", "username"]}


def raw_server(uri, safe=False):
    """safe: what Nameko does by default, publisher confirms and persistent
    messages on a durable request queue."""
    from kombu import Connection, Exchange, Producer, Queue

    name = RAW_QUEUE + ("-safe" if safe else "")
    with Connection(uri, transport_options={"confirm_publish": safe}) as connection:
        channel = connection.channel()
        producer = Producer(channel, exchange=Exchange(""), serializer="json")
        queue = Queue(name, exchange=Exchange(""), routing_key=name, durable=safe, auto_delete=False)

        def on_message(body, message):
            producer.publish(body, routing_key=message.properties["reply_to"],
                             correlation_id=message.properties["correlation_id"], delivery_mode=2 if safe else 1)
            message.ack()

        with connection.Consumer(queue, callbacks=[on_message], channel=channel) as consumer:
            consumer.qos(prefetch_count=10)
            print("ready", flush=True)
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    pass


def raw_client(uri, count, safe=False):
    from kombu import Connection, Exchange, Producer, Queue

    latencies = []
    name = RAW_QUEUE + ("-safe" if safe else "")
    with Connection(uri, transport_options={"confirm_publish": safe}) as connection:
        channel = connection.channel()
        reply_queue = Queue("bench-raw-reply-" + uuid.uuid4().hex, exchange=Exchange(""), exclusive=True,
                            auto_delete=True)
        producer = Producer(channel, exchange=Exchange(""), serializer="json")
        answers = {}

        def on_reply(body, message):
            answers[message.properties["correlation_id"]] = body
            message.ack()

        with connection.Consumer(reply_queue, callbacks=[on_reply], channel=channel):
            reply_to = reply_queue.name
            started = time.perf_counter()
            for _ in range(count):
                call_started = time.perf_counter()
                correlation_id = uuid.uuid4().hex
                producer.publish(PAYLOAD, routing_key=name, reply_to=reply_to,
                                 correlation_id=correlation_id, delivery_mode=2 if safe else 1)
                while correlation_id not in answers:
                    connection.drain_events(timeout=10)
                assert answers.pop(correlation_id) == PAYLOAD
                latencies.append((time.perf_counter() - call_started) * 1000)
            seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies_ms": latencies}


def nameko_client(uri, count, variant="default"):
    import eventlet

    eventlet.monkey_patch()
    from nameko.standalone.rpc import ClusterRpcProxy

    latencies = []
    with ClusterRpcProxy({"AMQP_URI": uri, "serializer": "json"}, timeout=10) as proxy:
        echo = getattr(proxy, "bench_echo_" + variant)
        _until_served(lambda: echo.echo(PAYLOAD))  # also declares the reply queue
        started = time.perf_counter()
        for _ in range(count):
            call_started = time.perf_counter()
            assert echo.echo(PAYLOAD) == PAYLOAD
            latencies.append((time.perf_counter() - call_started) * 1000)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies_ms": latencies}


def service_loop(uri, count, concurrency, variant="default"):
    import eventlet

    eventlet.monkey_patch()
    from nameko.standalone.rpc import ClusterRpcProxy

    with ClusterRpcProxy({"AMQP_URI": uri, "serializer": "json"}, timeout=300) as proxy:
        caller = getattr(proxy, "bench_caller_" + variant)
        _until_served(lambda: caller.loop(10, 1, PAYLOAD))
        return caller.loop(count, concurrency, PAYLOAD)


def _until_served(call, timeout=90):
    """Call until the services are up (UnknownService until they consume)."""
    from nameko.exceptions import RemoteError, UnknownService

    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (UnknownService, RemoteError) as exc:
            if isinstance(exc, RemoteError) and exc.exc_type != "UnknownService":
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(argv):
    command, uri = argv[0], argv[1]
    if command == "raw-server":
        raw_server(uri, safe=argv[2:] == ["safe"])
        return
    if command == "raw-client":
        result = raw_client(uri, int(argv[2]), safe=argv[3:] == ["safe"])
    elif command == "nameko-client":
        result = nameko_client(uri, int(argv[2]), *argv[3:])
    elif command == "service-loop":
        result = service_loop(uri, int(argv[2]), int(argv[3]), *argv[4:])
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
