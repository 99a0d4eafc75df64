"""The auth service: accounts, tokens, profiles and the follow graph."""
from nameko.rpc import rpc

from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import PageArgs, as_time, as_uuid, decode_cursor, page
from http_edge.validation import json_body, path_id, query_args
from services.auth import accounts, schemas
from services.auth.dependencies import LoginThrottleProvider, PasswordHasher, TokenIssuer
from services.auth.exceptions import UserNotFound
from services.auth.models import Base
from services.auth.models import Outbox as OutboxTable
from services.shared.database import Database
from services.shared.ids import parse_uuid, valid_uuids
from services.shared.observability import Observability
from services.shared.outbox import Outbox
from services.shared.redis import Redis
from services.shared.rpc import BoundedRpcProxy


# The mixin is reached through its module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class AuthService(health.HealthEndpoints):
    name = "auth"

    db = Database(Base)
    outbox = Outbox(OutboxTable)
    passwords = PasswordHasher()
    tokens = TokenIssuer()
    throttle = LoginThrottleProvider()
    redis = Redis()
    broker = health.BrokerProbe()
    events = BoundedRpcProxy("events")
    observability = Observability()

    def readiness_probes(self):
        return {"database": health.database_probe(self.db), "broker": self.broker, "redis": self.redis.ping}

    # Accounts and sessions ------------------------------------------------------

    @http("POST", "/auth/register", public=True)
    def register(self, request):
        data = json_body(request, schemas.RegisterRequest())
        return 201, accounts.register(self.db.session, self.outbox, self.passwords, self.tokens, **data)

    @http("POST", "/auth/login", public=True)
    def login(self, request):
        data = json_body(request, schemas.LoginRequest())
        return accounts.login(
            self.db.session, self.passwords, self.tokens, self.throttle,
            data["login"], data["password"], request.remote_addr,
        )

    @http("POST", "/auth/refresh", public=True)
    def refresh(self, request):
        data = json_body(request, schemas.RefreshRequest())
        return accounts.refresh(self.db.session, self.tokens, data["refresh_token"])

    @http("POST", "/auth/logout", public=True)
    def logout(self, request):
        data = json_body(request, schemas.RefreshRequest())
        accounts.logout(self.db.session, data["refresh_token"])

    @http("GET", "/auth/me")
    def me(self, request):
        return accounts.me(self.db.session, request.user_id)

    # Profiles -----------------------------------------------------------------

    @http("PATCH", "/users/me")
    def update_me(self, request):
        changes = json_body(request, schemas.ProfileUpdate())
        return accounts.update_profile(self.db.session, request.user_id, changes, self.events.get_media)

    @http("GET", "/users/<string:id>")
    def get_profile(self, request, id):
        return accounts.profile(self.db.session, request.user_id, _user_id(id))

    @http("GET", "/users")
    def search_users(self, request):
        args = query_args(request, schemas.UserSearchArgs())
        after = decode_cursor(args["cursor"], str)
        users, views = accounts.search(self.db.session, request.user_id, args["q"], args["limit"], after)
        return page(users, args["limit"], lambda user: (user.username,), lambda user: views[user.id])

    # Follow graph ---------------------------------------------------------------

    @http("POST", "/users/<string:id>/follow")
    def follow(self, request, id):
        accounts.follow(self.db.session, self.outbox, request.user_id, _user_id(id))

    @http("DELETE", "/users/<string:id>/follow")
    def unfollow(self, request, id):
        accounts.unfollow(self.db.session, self.outbox, request.user_id, _user_id(id))

    @http("GET", "/users/<string:id>/followers")
    def followers(self, request, id):
        return self._follow_page(request, id, "followers")

    @http("GET", "/users/<string:id>/following")
    def following(self, request, id):
        return self._follow_page(request, id, "following")

    def _follow_page(self, request, id, direction):
        args = query_args(request, PageArgs())
        after = decode_cursor(args["cursor"], as_time, as_uuid)
        rows, views = accounts.follow_page(
            self.db.session, request.user_id, _user_id(id), direction, args["limit"], after,
        )
        return page(rows, args["limit"], lambda row: (row[1], row[0].id), lambda row: views[row[0].id])

    # RPC: for the other services and for operators (`nameko shell`) -----------

    @rpc
    def get_user(self, user_id):
        """Public view of one active user, or None."""
        users = accounts.users_by_ids(self.db.session, valid_uuids([user_id]))
        return users[0] if users else None

    @rpc
    def get_users(self, user_ids):
        """Summary views of many users in one call (unknown ids are left out)."""
        return accounts.users_by_ids(self.db.session, valid_uuids(user_ids))

    @rpc
    def get_following_ids(self, user_id):
        user_id = parse_uuid(user_id)
        return accounts.following_ids(self.db.session, user_id) if user_id else []

    @rpc
    def find_user(self, login):
        """Private view (with email) of a user by email or username, or None."""
        return accounts.find_user(self.db.session, login)

    @rpc
    def deactivate_user(self, user_id):
        """Sign the user out everywhere and hide them; True if they were active."""
        user_id = parse_uuid(user_id)
        return bool(user_id) and accounts.deactivate(self.db.session, self.outbox, user_id)

    @rpc
    def counts(self):
        return accounts.counts(self.db.session)

    @rpc
    def outbox_backlog(self):
        """Events recorded but not yet published to RabbitMQ."""
        return self.outbox.pending_count()



def _user_id(value):
    return path_id(value, UserNotFound)
