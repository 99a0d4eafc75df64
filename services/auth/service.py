"""The auth service: accounts, tokens, profiles and the follow graph.

Each entrypoint turns the request into plain arguments, runs one domain call
in a unit of work, and writes the answer with its schema. The answer is
written inside the unit of work: leaving it commits, which expires the rows,
and reading them after would load each again.
"""

from datetime import timedelta

import redis
from nameko.timer import timer

from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import BY_TIME, PageArgs, page, page_of
from services.auth import accounts, schemas, sessions
from services.auth.dependencies import (
    ExportThrottleProvider,
    LoginThrottleProvider,
    PasswordHasher,
    RegistrationThrottleProvider,
    TokenIssuer,
)
from services.auth.exceptions import RefreshTokenReused, UserNotFound
from services.auth.models import Base, ProcessedEvent
from services.auth.models import Outbox as OutboxTable
from services.shared import clock, contracts
from services.shared import outbox as shared_outbox
from services.shared.database import Database
from services.shared.events import consumes
from services.shared.ids import parse_uuid, valid_uuids
from services.shared.observability import Observability
from services.shared.outbox import Outbox
from services.shared.redis import Redis, Revocations
from services.shared.revocation import revocation_of
from services.shared.rpc import BoundedRpcProxy, rpc

# How often each replica checks that the revocation list survived in Redis.
REVOCATION_SEED_CHECK_SECONDS = 5


# The mixins are reached through their module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class AuthService(health.HealthEndpoints, shared_outbox.OutboxOperations, shared_outbox.UnitsOfWork):
    name = "auth"

    db = Database(Base)
    outbox = Outbox(OutboxTable, ProcessedEvent)
    passwords = PasswordHasher()
    tokens = TokenIssuer()
    throttle = LoginThrottleProvider()
    registrations = RegistrationThrottleProvider()
    exports = ExportThrottleProvider()
    redis = Redis()
    revocations = Revocations()
    broker = health.BrokerProbe()
    events = BoundedRpcProxy("events")
    messages = BoundedRpcProxy("messages")
    observability = Observability()

    def readiness_probes(self):
        return {"database": health.database_probe(self.db), "broker": self.broker, "redis": self.redis.ping}

    # Accounts and sessions ------------------------------------------------------

    @http("POST", "/auth/register", public=True, body=schemas.RegisterRequest,
          responses={201: schemas.Session}, errors=(409, 429))
    def register(self, request):
        """Create an account and sign in."""
        with self.uow as uow:
            signed_in = accounts.register(uow, self.passwords, self.tokens, self.registrations,
                                          request.remote_addr, **request.body)
            return 201, schemas.SESSION.dump(signed_in)

    @http("POST", "/auth/login", public=True, body=schemas.LoginRequest,
          responses={200: schemas.Session}, errors=(401, 429))
    def login(self, request):
        """Sign in with an email or username and a password."""
        with self.uow as uow:
            signed_in = accounts.login(uow, self.passwords, self.tokens, self.throttle,
                                       request.body["login"], request.body["password"], request.remote_addr)
            return schemas.SESSION.dump(signed_in)

    @http("POST", "/auth/refresh", public=True, body=schemas.RefreshRequest,
          responses={200: schemas.Session}, errors=(401,))
    def refresh(self, request):
        """Trade a refresh token for a new pair; the old one stops working."""
        with self.uow as uow:
            outcome = sessions.refresh(uow, self.tokens, request.body["refresh_token"])
            if outcome is not sessions.FAMILY_REVOKED:
                return schemas.SESSION.dump(outcome)
        # A spent token came back: its family's revocation is committed now,
        # and only then is the caller refused (an error would roll it back).
        raise RefreshTokenReused()

    @http("POST", "/auth/logout", public=True, body=schemas.RefreshRequest, responses={204: None})
    def logout(self, request):
        """End the session the refresh token belongs to."""
        with self.uow as uow:
            sessions.sign_out(uow, request.body["refresh_token"])

    @http("GET", "/auth/me", responses={200: schemas.PrivateUser})
    def me(self, request):
        """The caller's own account, with email."""
        with self.uow as uow:
            return schemas.PRIVATE_USER.dump(accounts.me(uow, request.user_id))

    @http("POST", "/auth/password", body=schemas.PasswordChange, responses={204: None}, errors=(401, 422, 429))
    def change_password(self, request):
        """Change the password (the current one confirms it); every other session is signed out."""
        body = request.body
        with self.uow as uow:
            accounts.change_password(uow, self.passwords, self.throttle, request.user_id, request.session_id,
                                     body["current_password"], body["new_password"], request.remote_addr)

    @http("DELETE", "/auth/me", body=schemas.AccountDeletion, responses={204: None}, errors=(401, 429))
    def delete_me(self, request):
        """Delete the account (the password confirms it): its data goes, its tokens stop working."""
        with self.uow as uow:
            accounts.delete_account(uow, self.passwords, self.throttle, request.user_id,
                                    request.body["password"], request.remote_addr)

    @http("GET", "/auth/me/export", responses={200: schemas.AccountExport}, errors=(429, 503))
    def export_me(self, request):
        """Everything the account owns or wrote, across services, as one JSON document."""
        self.exports.reserve(request.user_id)
        with self.uow as uow:
            profile, own = accounts.export_user(uow, request.user_id)
            document = {"format": "lifytp-export/1", "exported_at": clock.now(),
                        "profile": schemas.PRIVATE_USER.dump(profile)}
        parts = {"auth": own, "events": self.events.export_user(request.user_id),
                 "messages": self.messages.export_user(request.user_id)}
        truncated = []
        for section, holder in accounts.EXPORT_SECTIONS:
            document[section] = parts[holder]["sections"][section]
            truncated += [section] if section in parts[holder]["truncated"] else []
        return schemas.ACCOUNT_EXPORT.dump(dict(document, truncated=truncated))

    # Profiles -----------------------------------------------------------------

    @http("PATCH", "/users/me", body=schemas.ProfileUpdate, responses={200: schemas.PrivateUser})
    def update_me(self, request):
        """Change display name, bio or avatar (a media id of an image you uploaded)."""
        with self.uow as uow:
            updated = accounts.update_profile(uow, request.user_id, dict(request.body), self.events.get_media)
            return schemas.PRIVATE_USER.dump(updated)

    @http("GET", "/users/<uuid:id>", responses={200: schemas.PublicUser}, not_found=UserNotFound)
    def get_profile(self, request, id):
        """A user's public profile, with follow counts."""
        with self.uow as uow:
            return schemas.PUBLIC_USER.dump(accounts.profile(uow, request.user_id, id))

    @http("GET", "/users", query=schemas.UserSearchArgs, responses={200: page_of(schemas.PublicUser)})
    def search_users(self, request):
        """Users whose username or display name starts with q (case-insensitive)."""
        args = request.query
        after = schemas.BY_USERNAME.decode(args["cursor"])
        with self.uow as uow:
            found = accounts.search(uow, request.user_id, args["q"], args["limit"],
                                    after_username=after[0] if after else None)
            return page(found, args["limit"], lambda profile: (profile.username,), schemas.PUBLIC_USER.dump,
                        schemas.BY_USERNAME)

    # Follow graph ---------------------------------------------------------------

    @http("POST", "/users/<uuid:id>/follow", responses={204: None}, errors=(422,), not_found=UserNotFound)
    def follow(self, request, id):
        """Follow a user (idempotent)."""
        with self.uow as uow:
            accounts.follow(uow, request.user_id, id)

    @http("DELETE", "/users/<uuid:id>/follow", responses={204: None}, not_found=UserNotFound)
    def unfollow(self, request, id):
        """Stop following a user (idempotent)."""
        with self.uow as uow:
            accounts.unfollow(uow, request.user_id, id)

    @http("GET", "/users/<uuid:id>/followers", query=PageArgs, responses={200: page_of(schemas.PublicUser)},
          not_found=UserNotFound)
    def followers(self, request, id):
        """A user's followers, newest first."""
        return self._follow_page(request, id, accounts.FOLLOWERS)

    @http("GET", "/users/<uuid:id>/following", query=PageArgs, responses={200: page_of(schemas.PublicUser)},
          not_found=UserNotFound)
    def following(self, request, id):
        """Who a user follows, newest first."""
        return self._follow_page(request, id, accounts.FOLLOWING)

    def _follow_page(self, request, user_id, direction):
        args = request.query
        after = BY_TIME.decode(args["cursor"])
        with self.uow as uow:
            found = accounts.follow_page(uow, request.user_id, user_id, direction, args["limit"], after)
            return page(found, args["limit"], lambda entry: (entry[1], entry[0].id),
                        lambda entry: schemas.PUBLIC_USER.dump(entry[0]))

    # RPC: for the other services and for operators (`nameko shell`) -----------

    @rpc
    def get_user(self, user_id):
        """Summary of one active user, or None."""
        with self.uow as uow:
            users = accounts.users_by_ids(uow, valid_uuids([user_id]))
            return schemas.USER_SUMMARY.dump(users[0]) if users else None

    @rpc
    def get_users(self, user_ids):
        """Summaries of many users in one call (unknown ids are left out)."""
        with self.uow as uow:
            return schemas.USER_SUMMARY.dump(accounts.users_by_ids(uow, valid_uuids(user_ids)), many=True)

    @rpc
    def get_following_ids(self, user_id):
        user_id = parse_uuid(user_id)
        if not user_id:
            return []
        with self.uow as uow:
            return accounts.following_ids(uow, user_id)

    @rpc
    def find_user(self, login):
        """Private view (with email and is_active) of a user by email or username, or None."""
        with self.uow as uow:
            found = accounts.find_user(uow, login)
            return schemas.OPERATOR_USER.dump(found) if found is not None else None

    @rpc
    def deactivate_user(self, user_id):
        """Sign the user out everywhere and hide them; True if they were active."""
        user_id = parse_uuid(user_id)
        if not user_id:
            return False
        with self.uow as uow:
            return accounts.deactivate(uow, user_id)

    # Domain events --------------------------------------------------------------

    @consumes(contracts.SessionsRevoked)
    def on_sessions_revoked(self, event):
        """Committed revocations reach the list every verifier reads (idempotent)."""
        self.revocations.apply(revocation_of(event))

    @timer(interval=REVOCATION_SEED_CHECK_SECONDS)
    def keep_revocation_list(self):
        """Write the last hour's revocations again when Redis has lost them
        (it restarted empty): until then, revoked tokens would work again."""
        try:
            if self.revocations.is_seeded():
                return
            since = clock.now() - timedelta(seconds=self.revocations.ttl_seconds)
            with self.uow as uow:
                found = sessions.recent_revocations(uow, since)
            self.revocations.seed([revocation_of(event) for event in found])
        except (redis.ConnectionError, redis.TimeoutError):
            return  # Redis is down: the next round tries again

    @rpc
    def counts(self):
        with self.uow as uow:
            return accounts.counts(uow)
