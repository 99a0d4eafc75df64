"""The auth service: accounts, tokens, profiles, the follow graph, blocks and mutes.

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
from services.auth import accounts, moderation, outgoing, privacy, safety, schemas, sessions
from services.auth.dependencies import (
    ForgotPasswordThrottleProvider,
    LoginThrottleProvider,
    MailPost,
    PasswordHasher,
    RegistrationThrottleProvider,
    ReportQueueMetrics,
    TokenIssuer,
    UserQuotaProvider,
)
from services.auth.exceptions import FollowRequestNotFound, RefreshTokenReused, ReportNotFound, UserNotFound
from services.auth.models import Base, ProcessedEvent
from services.auth.models import Outbox as OutboxTable
from services.auth.profiles import STATUS_REQUESTED
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
from services.shared.unit_of_work import UnitOfWork

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
    # Each report asks another service about its target; a flood would bury the moderators' queue.
    report_throttle = UserQuotaProvider("reports", "REPORTS_MAX_PER_USER", "REPORTS_WINDOW_SECONDS", 20, "user",
                                        "Too many reports; try again later.")
    report_metrics = ReportQueueMetrics()
    # Each export reads everything the account holds in every service.
    exports = UserQuotaProvider("exports", "EXPORT_MAX_PER_USER", "EXPORT_WINDOW_SECONDS", 5, "account",
                                "Too many exports of this account; try again later.")
    # Each sends a mail to an address not yet proved.
    verification_resends = UserQuotaProvider("verification-resends", "VERIFY_RESEND_MAX_PER_ACCOUNT",
                                             "VERIFY_RESEND_WINDOW_SECONDS", 3, "account",
                                             "Too many verification mails asked for; try again later.")
    forgotten_passwords = ForgotPasswordThrottleProvider()
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
        """Change display name, bio, avatar (a media id of an image you uploaded),
        whether the account is private, and who may add you to groups."""
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

    @http("POST", "/users/<uuid:id>/follow", responses={204: None, 202: schemas.FollowRequested}, errors=(403, 422),
          not_found=UserNotFound)
    def follow(self, request, id):
        """Follow a user (idempotent); a private account answers 202: the request waits for its owner;
        403 BLOCKED if either of you blocks the other."""
        with self.uow as uow:
            status = accounts.follow(uow, request.user_id, id)
        if status == STATUS_REQUESTED:
            return 202, schemas.FOLLOW_REQUESTED.dump({"status": status})
        return None

    @http("DELETE", "/users/<uuid:id>/follow", responses={204: None}, not_found=UserNotFound)
    def unfollow(self, request, id):
        """Stop following a user, or take back a follow request (idempotent)."""
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

    # A private account's follow requests, and its followers ---------------------

    @http("GET", "/users/me/follow-requests", query=PageArgs, responses={200: page_of(schemas.PublicUser)})
    def follow_requests(self, request):
        """Who asked to follow me (a private account), newest first."""
        return self._user_page(request, lambda uow, limit, after: privacy.request_page(
            uow, request.user_id, limit, after))

    @http("POST", "/users/me/follow-requests/<uuid:id>/approve", responses={204: None},
          not_found=FollowRequestNotFound)
    def approve_follow_request(self, request, id):
        """Let a user who asked follow me."""
        with self.uow as uow:
            privacy.approve(uow, request.user_id, id)

    @http("POST", "/users/me/follow-requests/<uuid:id>/decline", responses={204: None},
          not_found=FollowRequestNotFound)
    def decline_follow_request(self, request, id):
        """Refuse a follow request; the user is not told."""
        with self.uow as uow:
            privacy.decline(uow, request.user_id, id)

    @http("DELETE", "/users/me/followers/<uuid:id>", responses={204: None}, errors=(422,), not_found=UserNotFound)
    def remove_follower(self, request, id):
        """A follower of mine no longer follows me (idempotent); they lose what is followers-only."""
        with self.uow as uow:
            privacy.remove_follower(uow, request.user_id, id)

    def _follow_page(self, request, user_id, direction):
        return self._user_page(request, lambda uow, limit, after: accounts.follow_page(
            uow, request.user_id, user_id, direction, limit, after))

    def _user_page(self, request, fetch):
        """A page of users newest first: fetch(uow, limit, after) gives up to
        limit + 1 (profile, since) after the (since, user id) of the cursor."""
        args = request.query
        after = BY_TIME.decode(args["cursor"])
        with self.uow as uow:
            found = fetch(uow, args["limit"], after)
            return page(found, args["limit"], lambda entry: (entry[1], entry[0].id),
                        lambda entry: schemas.PUBLIC_USER.dump(entry[0]))

    # Blocks and mutes -------------------------------------------------------------

    @http("POST", "/users/<uuid:id>/block", responses={204: None}, errors=(422,), not_found=UserNotFound)
    def block(self, request, id):
        """Block a user (idempotent): the follows between you end, and neither sees the other."""
        with self.uow as uow:
            safety.block(uow, request.user_id, id)

    @http("DELETE", "/users/<uuid:id>/block", responses={204: None}, not_found=UserNotFound)
    def unblock(self, request, id):
        """Stop blocking a user (idempotent); follows the block ended are not restored."""
        with self.uow as uow:
            safety.unblock(uow, request.user_id, id)

    @http("GET", "/users/me/blocks", query=PageArgs, responses={200: page_of(schemas.PublicUser)})
    def my_blocks(self, request):
        """The users I block, the latest first."""
        return self._relation_page(request, safety.BLOCKS)

    @http("POST", "/users/<uuid:id>/mute", responses={204: None}, errors=(422,), not_found=UserNotFound)
    def mute(self, request, id):
        """Mute a user (idempotent): their posts and events leave my feed and
        their messages notify me no more. They are not told."""
        with self.uow as uow:
            safety.mute(uow, request.user_id, id)

    @http("DELETE", "/users/<uuid:id>/mute", responses={204: None}, not_found=UserNotFound)
    def unmute(self, request, id):
        """Stop muting a user (idempotent)."""
        with self.uow as uow:
            safety.unmute(uow, request.user_id, id)

    @http("GET", "/users/me/mutes", query=PageArgs, responses={200: page_of(schemas.PublicUser)})
    def my_mutes(self, request):
        """The users I mute, the latest first."""
        return self._relation_page(request, safety.MUTES)

    def _relation_page(self, request, kind):
        return self._user_page(request, lambda uow, limit, after: safety.relation_page(
            uow, kind, request.user_id, limit, after))

    # Reports ----------------------------------------------------------------------

    @http("POST", "/reports", body=schemas.ReportCreate,
          responses={201: schemas.ReportAnswer, 200: schemas.ReportAnswer}, errors=(404, 422, 429))
    def report(self, request):
        """Report a user, or a post, event, message or media item I can see; the
        same target again answers my first report (200)."""
        with self.uow as uow:
            reported = moderation.report(uow, self.report_throttle, self._reported_content, request.user_id,
                                         **request.body)
            return (201 if reported.created else 200), schemas.REPORT_ANSWER.dump(reported.report)

    def _reported_content(self, viewer_id, target_type, target_id):
        """The snapshot the service holding the target gives the reporter, or None."""
        if target_type in contracts.REMOVABLE_IN_EVENTS:
            return self.events.report_snapshot(viewer_id, target_type, target_id)
        if target_type in contracts.REMOVABLE_IN_MESSAGES:
            return self.messages.report_snapshot(viewer_id, target_id)
        return None

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
    def group_invite_refusals(self, inviter_id, user_ids):
        """The ids among user_ids whose group_invites setting refuses being
        added to a group by inviter_id (messages asks when a group is made)."""
        inviter_id = parse_uuid(inviter_id)
        if not inviter_id:
            return []
        with self.uow as uow:
            return privacy.group_invite_refusals(uow, inviter_id, valid_uuids(user_ids))

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

    # Moderation, for operators (`nameko shell`; README, "Moderation") ---------

    @rpc
    def open_reports(self, limit=50):
        """The oldest open reports first (at most limit, up to 200), each with the reported content."""
        with self.uow as uow:
            return schemas.OPERATOR_REPORT.dump(moderation.open_reports(uow, limit), many=True)

    @rpc
    def get_report(self, report_id):
        """One report, whatever its status, or None."""
        report_id = parse_uuid(report_id)
        if not report_id:
            return None
        with self.uow as uow:
            try:
                return schemas.OPERATOR_REPORT.dump(moderation.get_report(uow, report_id))
            except ReportNotFound:
                return None

    @rpc
    def report_queue(self):
        """{open, oldest_open_age_seconds}: what the metrics export, read now."""
        with self.uow as uow:
            count, oldest = moderation.queue_stats(uow.session)
        age = (clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        return {"open": count, "oldest_open_age_seconds": age}

    @rpc
    def dismiss_report(self, report_id, by=None):
        """Close the report, and every open one on its target, with nothing done."""
        return self._act(moderation.dismiss, report_id, by)

    @rpc
    def remove_content(self, report_id, by=None):
        """Remove the reported post, event, media item or message everywhere; closes its reports."""
        return self._act(moderation.remove_content, report_id, by)

    @rpc
    def suspend_account(self, report_id, by=None):
        """Deactivate the account the report is about (or whose content it is); closes its reports."""
        return self._act(moderation.suspend, report_id, by)

    @rpc
    def moderation_log(self, report_id):
        """Who did what to a report, and when, oldest first."""
        report_id = parse_uuid(report_id)
        if not report_id:
            raise ReportNotFound()
        with self.uow as uow:
            return schemas.MODERATION_ACTION.dump(moderation.actions(uow, report_id), many=True)

    def _act(self, action, report_id, operator):
        report_id = parse_uuid(report_id)
        if not report_id:
            raise ReportNotFound()
        with self.uow as uow:
            return schemas.MODERATION_OUTCOME.dump(action(uow, report_id, operator))

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
