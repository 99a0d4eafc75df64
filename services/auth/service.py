"""The auth service: accounts, tokens, profiles and the follow graph.

Each entrypoint turns the request into plain arguments, runs one domain call
in a unit of work, and writes the answer with its schema. The answer is
written inside the unit of work: leaving it commits, which expires the rows,
and reading them after would load each again.
"""

from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import BY_TIME, PageArgs, page, page_of
from services.auth import accounts, outgoing, schemas, sessions
from services.auth.dependencies import (
    ForgotPasswordThrottleProvider,
    LoginThrottleProvider,
    MailPost,
    PasswordHasher,
    RegistrationThrottleProvider,
    TokenIssuer,
    VerificationResendThrottleProvider,
)
from services.auth.exceptions import RefreshTokenReused, UserNotFound
from services.auth.models import Base, ProcessedEvent
from services.auth.models import Outbox as OutboxTable
from services.shared import contracts
from services.shared import outbox as shared_outbox
from services.shared.database import Database
from services.shared.events import consumes
from services.shared.ids import parse_uuid, valid_uuids
from services.shared.observability import Observability
from services.shared.outbox import Outbox
from services.shared.redis import Redis
from services.shared.rpc import BoundedRpcProxy, rpc
from services.shared.unit_of_work import UnitOfWork


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
    verification_resends = VerificationResendThrottleProvider()
    forgotten_passwords = ForgotPasswordThrottleProvider()
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

    # Email and password, by mail ---------------------------------------------------

    @http("POST", "/auth/email/verify", public=True, body=schemas.VerifyEmailRequest, responses={204: None},
          errors=(422,))
    def verify_email(self, request):
        """Verify the address a verification link was mailed to, with its token."""
        with self.uow as uow:
            accounts.verify_email(uow, request.body["token"])

    @http("POST", "/auth/email/verify/resend", responses={202: None}, errors=(429,))
    def resend_verification(self, request):
        """Mail another verification link to the caller's address (nothing once it is verified)."""
        with self.uow as uow:
            accounts.resend_verification(uow, self.verification_resends, request.user_id)
        return 202, None

    @http("POST", "/auth/email", body=schemas.ChangeEmailRequest, responses={200: schemas.PrivateUser},
          errors=(401, 409, 429))
    def change_email(self, request):
        """Change the caller's email, with their password: a verification link goes to the new
        address, a notice to the old one."""
        with self.uow as uow:
            changed = accounts.change_email(uow, self.passwords, self.throttle, request.user_id,
                                            request.body["email"], request.body["password"], request.remote_addr)
            return schemas.PRIVATE_USER.dump(changed)

    @http("POST", "/auth/password/forgot", public=True, body=schemas.ForgotPasswordRequest,
          responses={202: None}, errors=(429,))
    def forgot_password(self, request):
        """Mail a password reset link to the address, if an account has it: the same answer either way."""
        with self.uow as uow:
            accounts.forgot_password(uow, self.forgotten_passwords, request.body["email"], request.remote_addr)
        return 202, None

    @http("POST", "/auth/password/reset", public=True, body=schemas.ResetPasswordRequest, responses={204: None},
          errors=(422,))
    def reset_password(self, request):
        """Set a new password with the token of a reset link; every session of the account ends."""
        with self.uow as uow:
            accounts.reset_password(uow, self.passwords, request.body["token"], request.body["password"])

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

    @rpc
    def counts(self):
        with self.uow as uow:
            return accounts.counts(uow)

    @rpc
    def mail_backlog(self):
        """Mails queued and not yet sent: how many, and when the oldest was queued (an SMTP outage)."""
        with self.uow as uow:
            return outgoing.backlog(uow)


class AuthMailWorker:
    """Auth's mail worker: sends each mail the requests queued, after their
    commit (services.auth.outgoing). A container of its own, in the same
    process as auth: an SMTP outage holds its workers, each pausing before
    its mail is requeued, never the workers that answer auth's requests."""
    name = "auth_mail"

    db = Database(Base, of_service="auth")
    post = MailPost()
    observability = Observability()

    @consumes(contracts.MailQueued)
    def deliver_mail(self, event):
        # Records no event: a unit of work without the outbox relay's wake-up.
        with UnitOfWork(self.db.session, OutboxTable, ProcessedEvent) as uow:
            outgoing.deliver(uow, self.post, event.mail_id)
