"""The auth service: accounts, tokens, profiles and the follow graph."""

from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import BY_TIME, PageArgs, page, page_of
from http_edge.validation import path_id
from services.auth import accounts, schemas
from services.auth.dependencies import (
    LoginThrottleProvider,
    PasswordHasher,
    RegistrationThrottleProvider,
    TokenIssuer,
)
from services.auth.exceptions import UserNotFound
from services.auth.models import Base
from services.auth.models import Outbox as OutboxTable
from services.shared import outbox as shared_outbox
from services.shared.database import Database
from services.shared.ids import parse_uuid, valid_uuids
from services.shared.observability import Observability
from services.shared.outbox import Outbox
from services.shared.redis import Redis
from services.shared.rpc import BoundedRpcProxy, rpc


# The mixin is reached through its module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class AuthService(health.HealthEndpoints, shared_outbox.OutboxOperations):
    name = "auth"

    db = Database(Base)
    outbox = Outbox(OutboxTable)
    passwords = PasswordHasher()
    tokens = TokenIssuer()
    throttle = LoginThrottleProvider()
    registrations = RegistrationThrottleProvider()
    redis = Redis()
    broker = health.BrokerProbe()
    events = BoundedRpcProxy("events")
    observability = Observability()

    def readiness_probes(self):
        return {"database": health.database_probe(self.db), "broker": self.broker, "redis": self.redis.ping}

    # Accounts and sessions ------------------------------------------------------

    @http("POST", "/auth/register", public=True, body=schemas.RegisterRequest,
          responses={201: schemas.Session}, errors=(409, 429))
    def register(self, request):
        """Create an account and sign in."""
        return 201, accounts.register(
            self.db.session, self.outbox, self.passwords, self.tokens, self.registrations, request.remote_addr,
            **request.body,
        )

    @http("POST", "/auth/login", public=True, body=schemas.LoginRequest,
          responses={200: schemas.Session}, errors=(401, 429))
    def login(self, request):
        """Sign in with an email or username and a password."""
        return accounts.login(
            self.db.session, self.passwords, self.tokens, self.throttle,
            request.body["login"], request.body["password"], request.remote_addr,
        )

    @http("POST", "/auth/refresh", public=True, body=schemas.RefreshRequest,
          responses={200: schemas.Session}, errors=(401,))
    def refresh(self, request):
        """Trade a refresh token for a new pair; the old one stops working."""
        return accounts.refresh(self.db.session, self.tokens, request.body["refresh_token"])

    @http("POST", "/auth/logout", public=True, body=schemas.RefreshRequest, responses={204: None})
    def logout(self, request):
        """End the session the refresh token belongs to."""
        accounts.logout(self.db.session, request.body["refresh_token"])

    @http("GET", "/auth/me", responses={200: schemas.PrivateUser})
    def me(self, request):
        """The caller's own account, with email."""
        return accounts.me(self.db.session, request.user_id)

    # Profiles -----------------------------------------------------------------

    @http("PATCH", "/users/me", body=schemas.ProfileUpdate, responses={200: schemas.PrivateUser})
    def update_me(self, request):
        """Change display name, bio or avatar (a media id of an image you uploaded)."""
        return accounts.update_profile(self.db.session, request.user_id, request.body, self.events.get_media)

    @http("GET", "/users/<uuid:id>", responses={200: schemas.PublicUser})
    def get_profile(self, request, id):
        """A user's public profile, with follow counts."""
        return accounts.profile(self.db.session, request.user_id, _user_id(id))

    @http("GET", "/users", query=schemas.UserSearchArgs, responses={200: page_of(schemas.PublicUser)})
    def search_users(self, request):
        """Users whose username or display name starts with q (case-insensitive)."""
        args = request.query
        after = schemas.BY_USERNAME.decode(args["cursor"])
        users, views = accounts.search(self.db.session, request.user_id, args["q"], args["limit"], after)
        return page(users, args["limit"], lambda user: (user.username,), lambda user: views[user.id],
                    schemas.BY_USERNAME)

    # Follow graph ---------------------------------------------------------------

    @http("POST", "/users/<uuid:id>/follow", responses={204: None}, errors=(422,))
    def follow(self, request, id):
        """Follow a user (idempotent)."""
        accounts.follow(self.db.session, self.outbox, request.user_id, _user_id(id))

    @http("DELETE", "/users/<uuid:id>/follow", responses={204: None})
    def unfollow(self, request, id):
        """Stop following a user (idempotent)."""
        accounts.unfollow(self.db.session, self.outbox, request.user_id, _user_id(id))

    @http("GET", "/users/<uuid:id>/followers", query=PageArgs, responses={200: page_of(schemas.PublicUser)})
    def followers(self, request, id):
        """A user's followers, newest first."""
        return self._follow_page(request, id, "followers")

    @http("GET", "/users/<uuid:id>/following", query=PageArgs, responses={200: page_of(schemas.PublicUser)})
    def following(self, request, id):
        """Who a user follows, newest first."""
        return self._follow_page(request, id, "following")

    def _follow_page(self, request, id, direction):
        args = request.query
        after = BY_TIME.decode(args["cursor"])
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



def _user_id(value):
    return path_id(value, UserNotFound)
