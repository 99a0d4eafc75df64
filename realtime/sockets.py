"""The Socket.IO server inside a Nameko container, and its entrypoint.

`SocketServer` is one python-socketio server per process, mounted at
`/socket.io` on the process's shared HTTP listener (`http_edge.server`), so it
answers on the same port as everything else. Its client manager is Redis: an
emit from any replica reaches whichever replica holds the socket, once.

A socket is admitted only with a valid access token (`auth: {token}`), checked
offline with the public key and against the revocation list; it joins the room
of its user, `user:<id>`. A revocation (`sessions_revoked`) closes the sockets
it covers on every replica at once.
Client events are handed to `@on_socket("name")` entrypoints, each run as a
Nameko worker (so they can use RPC and dependencies like any other entrypoint);
what the worker returns, or the error it raises, is the event's ack.
"""
import logging
import time
from urllib.parse import urlparse

import eventlet
import jwt
import redis
import socketio
from eventlet.event import Event
from nameko.constants import WEB_SERVER_CONFIG_KEY
from nameko.extensions import DependencyProvider, Entrypoint, ProviderCollector, SharedExtension
from nameko.web.server import parse_address
from redis.backoff import NoBackoff
from redis.retry import Retry

from http_edge.errors import error_body, error_response
from http_edge.server import ShuttingDown, listener_for
from realtime.delivered import RecentIds
from realtime.peers import HEARTBEAT_SECONDS, Peers
from realtime.transport import EngineServer, transport_app
from services.shared.errors import DependencyUnavailable, DomainError, InvalidInput
from services.shared.failures import as_domain_error
from services.shared.observability import set_connected_sockets
from services.shared.presence import REFRESH_SECONDS, Presence
from services.shared.redis import redis_from_config
from services.shared.revocation import Revocation, revocation_list
from services.shared.tokens import InvalidToken, max_token_age, verifier_from_file

log = logging.getLogger(__name__)

MOUNT_PATH = "/socket.io"
# Client events are small (typing is a conversation id); anything bigger is
# refused by Engine.IO before it reaches a handler.
MAX_PACKET_BYTES = 16 * 1024
MAX_TOKEN_CHARS = 4096
# A client that sends more events than this per second gets RATE_LIMITED acks:
# each event costs a worker, and typing fans out to every member.
MAX_EVENTS_PER_SECOND = 20
# Connections one account may hold across replicas (phones, tablets, tabs).
MAX_SOCKETS_PER_USER = 10
# After Redis comes back, the channel listener re-subscribes within this many
# seconds (python-socketio's own listener backs off 1, 2, 4 … 60 s, and every
# emit published meanwhile reaches none of this replica's sockets).
RESUBSCRIBE_FIRST_SECONDS = 0.1
RESUBSCRIBE_MAX_SECONDS = 0.5


def _closed_key(user_id):
    return "realtime:closed:" + user_id


def user_room(user_id):
    return "user:" + user_id


def pubsub_channel(redis_url):
    """Redis pub/sub ignores database numbers, so the channel carries it:
    systems sharing a Redis server on different databases stay apart."""
    database = (urlparse(redis_url).path or "/0").strip("/") or "0"
    return "lifytp-socketio:" + database


def error_ack(exc):
    domain_error = as_domain_error(exc)
    if domain_error is None:
        log.error("socket event failed", exc_info=(type(exc), exc, exc.__traceback__))
        return error_body("INTERNAL_ERROR", "Something went wrong on our side.")
    return error_body(domain_error.code, domain_error.message, domain_error.details)


def _seconds_left(token):
    """Seconds until a verified token expires."""
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    return max(0.0, expires_at - time.time())


def refusal(code, message):
    # The client sees `message` as the error's message and {code} as its data.
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code})


class GuardedServer(socketio.Server):
    """python-socketio's server, refusing client events with reserved names,
    over an Engine.IO server whose requests never hang (realtime.transport).

    python-socketio hands a client EVENT named "connect" or "disconnect" to
    the server's own handlers: a client that emitted "disconnect" cancelled
    its own expiry timer and presence yet stayed in its room, receiving
    pushes after its token expired or its account was closed.
    """

    def _engineio_server_class(self):
        return EngineServer

    def _handle_event(self, eio_sid, namespace, id, data):
        if not data or not isinstance(data[0], str) or data[0] in self.reserved_events:
            return None
        return super()._handle_event(eio_sid, namespace, id, data)


class ChannelManager(socketio.RedisManager):
    """python-socketio's Redis client manager, made dependable for pushes.

    - The listener re-subscribes promptly after Redis returns (a short bounded
      retry instead of an exponential back-off up to a minute), and says
      whether it is subscribed (`subscribed`), for `/ready` and for pushes.
    - An emit is published first and delivered to this replica's own sockets
      only once published; a publish that fails raises (python-socketio logs
      and drops it), so that the caller can retry the whole emit later.
    - An emit may carry a push id (the domain event's id). Every replica, this
      one included, delivers a push id to its sockets once (`RecentIds`): a
      publish that reached Redis although its reply was lost, and is therefore
      published again, reaches no socket twice.
    - A push counts as published only if every replica heard it (`Peers`):
      one that is still re-subscribing after a Redis restart would miss it
      for good, so the push fails (after reaching this replica's sockets) and
      the caller retries it.
    """

    connected: bool  # set by RedisManager, and here when a publish fails

    def __init__(self, url, channel):
        # No retries inside redis-py: the listener's own loop knows when the
        # subscription is lost and restores it; a publish fails fast.
        super().__init__(url, channel=channel, redis_options={
            "socket_connect_timeout": 2, "retry": Retry(NoBackoff(), 0)})
        self.subscribed = False
        self.delivered = RecentIds()
        self.peers = Peers()
        self.peers_channel = channel + ":replicas"
        # Set by the SocketServer: whether a local socket may still get pushes
        # (its token has not expired), and how to close a user's local sockets.
        self.socket_is_live = lambda sid: True
        self.close_local_sockets_of = lambda user_id: None
        self.close_local_revoked = lambda revocation: None

    def initialize(self):
        super().initialize()
        self.server.start_background_task(self._announce_forever)

    def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None, to=None,
             push_id=None, **kwargs):
        if kwargs.get("ignore_queue") or callback is not None or socketio.packet.Packet.data_is_binary([data]):
            return super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                                callback=callback, to=to, **kwargs)
        message = {"method": "emit", "event": event, "data": list(data) if isinstance(data, tuple) else [data],
                   "binary": False, "namespace": namespace or "/", "room": to or room, "skip_sid": skip_sid,
                   "callback": None, "host_id": self.host_id, "push_id": push_id}
        listeners = self._publish(message)  # to the other replicas; raises if Redis is down
        self._handle_emit(message)  # to the sockets held here
        if push_id is not None:
            self._require_every_replica(listeners)
        return None

    def _require_every_replica(self, listeners):
        """Raise unless PUBLISH reached every replica (this one's own subscription included)."""
        expected = self.peers.expected() + 1
        if listeners < expected:
            raise DependencyUnavailable(f"{listeners} of {expected} replicas heard it.", code="REPLICA_NOT_LISTENING")

    def get_participants(self, namespace, room):
        # Checked at every push, not only by the expiry timer.
        for sid, eio_sid in super().get_participants(namespace, room):
            if self.socket_is_live(sid):
                yield sid, eio_sid

    def close_user_everywhere(self, user_id):
        """Close every socket of user_id, on every replica; raise unless every replica heard it."""
        listeners = self._publish_control({"host_id": self.host_id, "close_user": user_id})
        self.close_local_sockets_of(user_id)
        self._require_every_replica(listeners)

    def close_revoked_everywhere(self, revocation):
        """Close the sockets a Revocation covers, on every replica; raise unless every replica heard it."""
        listeners = self._publish_control({"host_id": self.host_id, "close_revoked": {
            "user_id": revocation.user_id, "session_ids": list(revocation.session_ids),
            "not_before": revocation.not_before}})
        self.close_local_revoked(revocation)
        self._require_every_replica(listeners)

    def _handle_emit(self, message):
        push_id = message.get("push_id")
        if isinstance(push_id, str) and not self.delivered.first_time(push_id):
            return  # published again: this replica's sockets have it already
        super()._handle_emit(message)

    def _publish(self, data):
        for attempt in (1, 2):
            try:
                if not self.connected:
                    self._redis_connect()
                return self.redis.publish(self.channel, self.json.dumps(data))
            except Exception:
                self.connected = False
                if attempt == 2:
                    raise
        return None

    def _redis_listen_with_retries(self):
        retry_sleep = RESUBSCRIBE_FIRST_SECONDS
        peers_channel = self.peers_channel.encode()
        pubsub = None
        while True:
            try:
                if not self.subscribed:
                    self._redis_connect()
                    # The listener's own: a publish that reconnects replaces self.pubsub.
                    pubsub = self.pubsub
                    pubsub.subscribe(self.channel, self.peers_channel)
                    self.subscribed = True
                    self.peers.listening_again()
                    self._announce("here")
                    retry_sleep = RESUBSCRIBE_FIRST_SECONDS
                    log.info("subscribed to %s", self.channel)
                assert pubsub is not None, "subscribed above, on the first pass"
                for message in pubsub.listen():
                    if message.get("channel") == peers_channel:
                        self._on_announcement(message.get("data"))
                    else:
                        yield message
                raise redis.ConnectionError("the subscription ended")
            except Exception as exc:
                if self.subscribed:
                    log.warning("Redis channel listener lost its subscription (%s); re-subscribing",
                                type(exc).__name__)
                self.subscribed = False
                time.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, RESUBSCRIBE_MAX_SECONDS)


    # Replicas announce themselves (realtime.peers) --------------------------------

    def _announce_forever(self):
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            if self.subscribed:  # "here" means "I hear the channel"
                self._announce("here")

    def _announce(self, state):
        try:
            self._publish_control({"host_id": self.host_id, "state": state})
        except Exception:  # Redis is down: the listener notices and re-subscribes
            log.debug("replica announcement not sent", exc_info=True)

    def _publish_control(self, message):
        return self.redis.publish(self.peers_channel, self.json.dumps(message))

    def leave(self):
        """Tell the other replicas not to wait for this one any more (a graceful stop)."""
        self._announce("leaving")

    def _on_announcement(self, data):
        try:
            announcement = self.json.loads(data)
        except (TypeError, ValueError):
            return
        host_id = announcement.get("host_id") if isinstance(announcement, dict) else None
        if host_id is None or host_id == self.host_id:
            return
        if isinstance(announcement.get("close_user"), str):
            self.close_local_sockets_of(announcement["close_user"])
        elif isinstance(announcement.get("close_revoked"), dict):
            revocation = _revocation_from(announcement["close_revoked"])
            if revocation is not None:
                self.close_local_revoked(revocation)
        elif announcement.get("state") == "leaving":
            self.peers.left(host_id)
        elif announcement.get("state") == "here":
            self.peers.heard(host_id)


def _revocation_from(data):
    """The Revocation another replica announced, or None if it is malformed."""
    user_id, session_ids, not_before = data.get("user_id"), data.get("session_ids"), data.get("not_before")
    if not isinstance(user_id, str) or not isinstance(session_ids, list) \
            or not all(isinstance(session_id, str) for session_id in session_ids) \
            or not (not_before is None or (isinstance(not_before, int) and not isinstance(not_before, bool))):
        return None
    return Revocation(user_id=user_id, session_ids=tuple(session_ids), not_before=not_before)


class SocketServer(ProviderCollector, SharedExtension):
    def __init__(self):
        super().__init__()
        self.users_by_sid = {}
        self._tokens_by_sid = {}  # sid -> the VerifiedToken it connected with
        self._expires_at = {}  # sid -> when its token expires (time.time())
        self._expiry_timers = {}
        self._event_windows = {}
        self._refresher = None
        self._stopping = False

    def setup(self):
        config = self.container.config
        self.bind_addr = parse_address(config.get(WEB_SERVER_CONFIG_KEY, "0.0.0.0:8000"))
        self.public_key_path = config["JWT_PUBLIC_KEY_PATH"]
        self.token_max_age = max_token_age(config)
        # No token older than this is accepted, whatever lifetime auth gave
        # it: a closed account stays refused for as long.
        self.closed_seconds = self.token_max_age
        self.redis = redis_from_config(config)
        self.revocations = revocation_list(config)
        self.presence = Presence(self.redis)
        self.sio = GuardedServer(
            async_mode="eventlet",
            client_manager=ChannelManager(config["REDIS_URL"], channel=pubsub_channel(config["REDIS_URL"])),
            max_http_buffer_size=MAX_PACKET_BYTES,
            # Tokens travel in the connect payload, never in cookies, so any
            # origin may connect without gaining anything.
            cors_allowed_origins="*",
            # Loggers, not False: given False, python-socketio and Engine.IO add
            # a handler of their own that prints raw tracebacks on stderr.
            logger=logging.getLogger("socketio.server"),
            engineio_logger=logging.getLogger("engineio.server"),
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("*", self._on_event)
        self.sio.manager.socket_is_live = self._socket_is_live
        self.sio.manager.close_local_sockets_of = self._close_local_sockets_of
        self.sio.manager.close_local_revoked = self._close_local_revoked

    def start(self):
        # Subscribe to the Redis channel at start rather than at the first
        # connection, so a Redis problem shows at once, not to the first user.
        self.sio.manager_initialized = True
        self.sio.manager.initialize()
        self._stopping = False
        app = socketio.WSGIApp(self.sio, socketio_path="socket.io")
        listener_for(self.bind_addr).mount(MOUNT_PATH, self._wsgi_app(transport_app(app, MAX_PACKET_BYTES)))
        self._refresher = eventlet.spawn(self._refresh_presence_forever)

    def _wsgi_app(self, app):
        def serve(environ, start_response):
            if self._stopping:
                # Like every route of a draining replica: the load balancer
                # sends the (re)connection to another replica.
                response = error_response(ShuttingDown())
                response.headers["Connection"] = "close"
                return response(environ, start_response)
            return app(environ, start_response)
        return serve

    def stop(self):
        self._stopping = True
        self.sio.manager.leave()
        if self._refresher is not None:
            self._refresher.kill()
        # Close the transports, without a Socket.IO or Engine.IO "disconnect"
        # packet: clients take such a packet as final and stay offline, while
        # a transport that closes makes them reconnect, through the load
        # balancer to another replica (this one answers 503 while draining).
        for eio_socket in list(self.sio.eio.sockets.values()):
            eio_socket.close(wait=False, abort=True, reason=self.sio.eio.reason.SERVER_DISCONNECT)
        for sid, user_id in list(self.users_by_sid.items()):
            self._forget(sid, user_id)
        super().stop()

    def check_subscribed(self):
        """Raise unless this replica hears the other replicas' emits."""
        if not self.sio.manager.subscribed:
            raise DependencyUnavailable("Not subscribed to the Redis channel.", code="PUBSUB_UNSUBSCRIBED")

    def kill(self):
        if self._refresher is not None:
            self._refresher.kill()

    # Connections ----------------------------------------------------------------

    def _on_connect(self, sid, environ, auth=None):
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise refusal("TOKEN_MISSING", "Connect with auth: {token: <access token>}.")
        try:
            verified = verifier_from_file(self.public_key_path, self.token_max_age).verify_token(token)
        except InvalidToken:
            raise refusal("TOKEN_INVALID", "The access token is invalid or expired.") from None
        user_id = verified.user_id
        self._admit(verified)
        self.users_by_sid[sid] = user_id
        self._tokens_by_sid[sid] = verified
        set_connected_sockets(len(self.users_by_sid))
        # A socket lives no longer than its token: a signed-out user stops
        # receiving pushes when the token runs out (checked again at every
        # push), and the app reconnects with a fresh one.
        seconds_left = _seconds_left(token)
        self._expires_at[sid] = time.time() + seconds_left
        self._expiry_timers[sid] = eventlet.spawn_after(seconds_left, self.sio.disconnect, sid)
        self.sio.enter_room(sid, user_room(user_id))
        self._presence("connected", user_id, sid)

    def _admit(self, token):
        """Refuse a closed account and a revoked token (both still valid by
        their signature for a while), and a user who holds too many sockets already."""
        user_id = token.user_id
        try:
            closed = self.redis.exists(_closed_key(user_id))
            revoked = self.revocations.is_revoked(token)
            live = self.presence.live_sockets(user_id)
        except Exception:
            raise refusal("UNAVAILABLE", "Try again in a moment.") from None
        if closed:
            raise refusal("ACCOUNT_CLOSED", "This account is closed.")
        if revoked:
            raise refusal("TOKEN_REVOKED", "The access token was revoked; sign in again.")
        if live >= MAX_SOCKETS_PER_USER:
            raise refusal("TOO_MANY_SOCKETS", f"At most {MAX_SOCKETS_PER_USER} connections per account.")

    def close_user(self, user_id):
        """Disconnect every socket of a closed account on every replica, and
        refuse its new ones for as long as its tokens can live."""
        self.redis.set(_closed_key(user_id), 1, ex=self.closed_seconds)
        self.sio.manager.close_user_everywhere(user_id)

    def close_revoked(self, revocation):
        """Disconnect the sockets a Revocation covers on every replica; the
        revocation is written first, so that none of them reconnects with the
        same token meanwhile (auth writes the same, idempotently)."""
        self.revocations.apply(revocation)
        self.sio.manager.close_revoked_everywhere(revocation)

    def _close_local_revoked(self, revocation):
        for sid, token in list(self._tokens_by_sid.items()):
            if revocation.revokes(token):
                self.sio.disconnect(sid)

    def _close_local_sockets_of(self, user_id):
        for sid, owner in list(self.users_by_sid.items()):
            if owner == user_id:
                # A Socket.IO disconnect: final, the client does not reconnect.
                self.sio.disconnect(sid)

    def _socket_is_live(self, sid):
        expires_at = self._expires_at.get(sid)
        if expires_at is not None and time.time() >= expires_at:
            eventlet.spawn(self.sio.disconnect, sid)
            return False
        return True

    def _on_disconnect(self, sid, *reason):
        user_id = self.users_by_sid.get(sid)
        if user_id:
            self._forget(sid, user_id)

    def _forget(self, sid, user_id):
        self.users_by_sid.pop(sid, None)
        self._tokens_by_sid.pop(sid, None)
        self._expires_at.pop(sid, None)
        set_connected_sockets(len(self.users_by_sid))
        self._event_windows.pop(sid, None)
        timer = self._expiry_timers.pop(sid, None)
        if timer is not None:
            timer.cancel()
        self._presence("disconnected", user_id, sid)

    def _presence(self, change, user_id, sid):
        try:
            getattr(self.presence, change)(user_id, sid)
        except Exception:  # presence is advisory; a Redis blip must not drop the socket
            log.warning("presence not recorded", exc_info=True)

    def _refresh_presence_forever(self):
        while True:
            eventlet.sleep(REFRESH_SECONDS)
            try:
                self.presence.refresh(dict(self.users_by_sid))
            except Exception:
                log.warning("presence refresh failed", exc_info=True)

    # Client events ----------------------------------------------------------------

    def _on_event(self, event, sid, *args):
        user_id = self.users_by_sid.get(sid)
        if user_id is None:
            return None
        provider = next((entry for entry in self._providers if entry.event_name == event), None)
        if self._over_rate(sid):
            return error_body("RATE_LIMITED", "Too many events; slow down.")
        if provider is None:
            return error_body("UNKNOWN_EVENT", "No such event.", {"event": [str(event)[:64]]})
        if len(args) != 1 or not isinstance(args[0], dict):
            return error_ack(InvalidInput("Send one JSON object.", code="MALFORMED_EVENT"))
        return provider.handle(user_id, args[0])

    def _over_rate(self, sid):
        second = int(time.monotonic())
        window, count = self._event_windows.get(sid, (second, 0))
        count = count + 1 if window == second else 1
        self._event_windows[sid] = (second, count)
        return count > MAX_EVENTS_PER_SECOND

    # Emitting ------------------------------------------------------------------------

    def emit_to_users(self, user_ids, event, data, push_id=None):
        """Send event to every socket of these users, on whichever replica holds it.
        With a push_id, a socket gets that push once however often it is emitted."""
        rooms = [user_room(user_id) for user_id in dict.fromkeys(user_ids)]
        if rooms:
            # One publish: every replica delivers to the sockets it holds in these rooms.
            self.sio.manager.emit(event, data, namespace="/", to=rooms, push_id=push_id)

    def emit_to_everyone(self, event, data, push_id=None):
        """Send event to every connected socket, on every replica (each socket once per push_id)."""
        self.sio.manager.emit(event, data, namespace="/", push_id=push_id)


class SocketEvent(Entrypoint):
    server = SocketServer()

    def __init__(self, event_name, **kwargs):
        self.event_name = event_name
        # Refusals (bad input, not a member) are answers, not crashes.
        kwargs.setdefault("expected_exceptions", DomainError)
        super().__init__(**kwargs)

    def setup(self):
        self.server.register_provider(self)

    def stop(self):
        self.server.unregister_provider(self)

    def handle(self, user_id, data):
        done = Event()
        try:
            self.container.spawn_worker(
                self, (user_id, data), {}, context_data={"user_id": user_id},
                handle_result=lambda worker_ctx, result, exc_info: self._finish(done, result, exc_info),
            )
            return done.wait()
        except Exception as exc:
            return error_ack(exc)

    @staticmethod
    def _finish(done, result, exc_info):
        done.send(error_ack(exc_info[1]) if exc_info else result)
        return result, exc_info


on_socket = SocketEvent.decorator


class Sockets(DependencyProvider):
    """What a worker uses to push events to users' sockets."""

    server = SocketServer()

    def get_dependency(self, worker_ctx):
        return self.server
