"""Request schemas of the auth API, and the answers it writes users and sessions with."""
from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates, validates_schema

from http_edge import answers
from http_edge.fields import StrictBoolean, Text, UUIDString
from http_edge.pagination import Keyset, name_part, page_args
from services.auth import moderation, password_policy
from services.auth.account_tokens import TOKEN_PATTERN
from services.auth.accounts import (
    MAX_BIO_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_SEARCH_LENGTH,
    USERNAME_PATTERN,
)
from services.auth.privacy import GROUP_INVITES
from services.auth.profiles import FOLLOW_STATUSES, STATUS_REQUESTED

USERNAME = validate.Regexp(f"^{USERNAME_PATTERN}$", error="3 to 30 characters: a-z, 0-9 and _.")
# User search lists users by username.
BY_USERNAME = Keyset(name_part(USERNAME_PATTERN))


class Password(fields.String):
    """A password as typed, for checking against a stored one. No password
    can hold a NUL (bcrypt could not hash it): the document says so."""

    def __init__(self, **kwargs):
        super().__init__(metadata={"pattern": "^[^\\u0000]*$"}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Not a string.")
        if "\x00" in value:
            raise ValidationError("Contains control characters.")
        if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
            # It has no UTF-8 form, so it could be neither hashed nor compared.
            raise ValidationError(password_policy.UNPAIRED)
        return value


class NewPassword(fields.String):
    """A password being set: the rules of services.auth.password_policy, stated
    in the API document too (lengths in characters, the rest in words). The
    domain receives it NFC-normalised, the form it is hashed in."""

    def __init__(self, **kwargs):
        metadata = {"minLength": password_policy.MIN_CHARACTERS, "maxLength": password_policy.MAX_CHARACTERS,
                    "description": password_policy.DESCRIPTION}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Not a string.")
        found = password_policy.problems(value)
        if found:
            raise ValidationError(found)
        return password_policy.normalise(value)


class RegisterRequest(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=MAX_EMAIL_LENGTH))
    username = fields.String(required=True, validate=USERNAME)
    password = NewPassword(required=True)
    display_name = Text(min=1, max=MAX_DISPLAY_NAME_LENGTH, load_default=None)

    @pre_load
    def normalise(self, data, **kwargs):
        data = dict(data)
        for key in ("email", "username"):
            if isinstance(data.get(key), str):
                data[key] = data[key].strip().lower()
        return data

    @validates_schema
    def password_is_not_the_users_name(self, data, **kwargs):
        # Runs only once every field is valid (marshmallow skips it otherwise).
        if password_policy.names_the_user(data["password"], data["username"], data["email"]):
            raise ValidationError(password_policy.PERSONAL, field_name="password")


class LoginRequest(Schema):
    login = Text(required=True, min=1, max=254)
    password = Password(required=True, validate=validate.Length(min=1, max=1024))


# What secrets.token_urlsafe makes. Anything else was never issued, and a lone
# surrogate could not even be hashed to be looked up.
REFRESH_TOKEN = validate.Regexp(r"^[A-Za-z0-9_-]+$", error="Not a refresh token.")


class RefreshRequest(Schema):
    refresh_token = fields.String(required=True, validate=[validate.Length(min=1, max=512), REFRESH_TOKEN])


class PasswordChange(Schema):
    current_password = Password(required=True, validate=validate.Length(min=1, max=1024))
    new_password = NewPassword(required=True)


class AccountDeletion(Schema):
    password = Password(required=True, validate=validate.Length(min=1, max=1024))


class Email(fields.Email):
    """An email address as accounts store it: trimmed and lower-cased."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Length(max=MAX_EMAIL_LENGTH), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


# A token from a link in a mail (services.auth.account_tokens).
ACCOUNT_TOKEN = validate.Regexp(f"^{TOKEN_PATTERN}$", error="Not a token from a LifyTP mail.")


class VerifyEmailRequest(Schema):
    token = fields.String(required=True, validate=ACCOUNT_TOKEN)


class ChangeEmailRequest(Schema):
    email = Email(required=True)
    password = Password(required=True, validate=validate.Length(min=1, max=1024))


class ForgotPasswordRequest(Schema):
    email = Email(required=True)


class ResetPasswordRequest(Schema):
    token = fields.String(required=True, validate=ACCOUNT_TOKEN)
    password = NewPassword(required=True)


class ProfileUpdate(Schema):
    display_name = Text(min=1, max=MAX_DISPLAY_NAME_LENGTH)
    bio = Text(max=MAX_BIO_LENGTH, multiline=True)
    avatar_media_id = UUIDString(allow_none=True)
    is_private = StrictBoolean(metadata={
        "description": "Followers need your approval. Turning it off approves every pending request."})
    group_invites = fields.String(validate=validate.OneOf(GROUP_INVITES), metadata={
        "description": "Who may add you to a group conversation: everyone, people you follow, or nobody."})

    @validates("display_name")
    def not_blank(self, value, **kwargs):
        if not value:
            raise ValidationError("Must not be blank.")


# page_args builds the class at run time: it has no static type to check against.
class UserSearchArgs(page_args(BY_USERNAME)):  # type: ignore[misc]
    q = Text(required=True, min=1, max=MAX_SEARCH_LENGTH)


class ReportCreate(Schema):
    target_type = fields.String(required=True, validate=validate.OneOf(moderation.TARGET_TYPES))
    target_id = UUIDString(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(moderation.REASONS))
    details = Text(max=moderation.MAX_DETAILS_LENGTH, multiline=True, load_default=None, allow_none=True)


# Answers -------------------------------------------------------------------------
# Each writes what the domain returns (users, services.auth.profiles.Profile,
# services.auth.sessions.SignedIn) and documents it.

class PublicUser(answers.UserSummary):
    # Whom auth answers with has an account: never the deleted user.
    username = fields.String(required=True)
    bio = fields.String(required=True)
    followers_count = fields.Integer(required=True)
    following_count = fields.Integer(required=True)
    is_following = fields.Boolean(required=True)
    is_private = fields.Boolean(required=True)
    follow_status = fields.String(required=True, metadata={
        "enum": list(FOLLOW_STATUSES), "description": "Where the caller stands: requested = waiting for approval."})


class PrivateUser(PublicUser):
    email = fields.Email(required=True)
    email_verified = fields.Boolean(required=True, metadata={
        "description": "Whether a link mailed to `email` was opened (false again after an email change)."})
    created_at = answers.Time(required=True)
    group_invites = fields.String(required=True, metadata={"enum": list(GROUP_INVITES)})


class FollowRequested(Schema):
    """The answer to following a private account: a request waits for its owner."""
    status = fields.String(required=True, metadata={"enum": [STATUS_REQUESTED]})


class Session(Schema):
    user = fields.Nested(PrivateUser, required=True)
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds the access token lives."})


class OperatorUser(PrivateUser):
    """An account as operators look it up (RPC find_user), closed ones too."""
    is_active = fields.Boolean(required=True)


class ReportAnswer(Schema):
    """A report as its reporter sees it."""
    id = fields.UUID(required=True)
    status = fields.String(required=True, metadata={"enum": ["open", "dismissed", "actioned"]})
    target_type = fields.String(required=True, metadata={"enum": list(moderation.TARGET_TYPES)})
    target_id = fields.UUID(required=True)
    reason = fields.String(required=True, metadata={"enum": list(moderation.REASONS)})
    created_at = answers.Time(required=True)


class OperatorReport(ReportAnswer):
    """A report as operators work it (RPC open_reports, get_report): with who
    reported whom, and the reported content as it was when reported."""
    reporter_id = fields.UUID(required=True)
    target_owner_id = fields.UUID(required=True)
    details = fields.String(required=True, allow_none=True)
    content = fields.Dict(required=True)
    resolved_at = answers.Time(required=True, allow_none=True)


class ModerationOutcome(Schema):
    """What one operator action did (RPC dismiss_report, remove_content, suspend_account)."""
    report_id = fields.UUID(required=True)
    action = fields.String(required=True)
    operator = fields.String(required=True)
    closed_report_ids = fields.List(fields.UUID(), required=True, attribute="closed_ids")
    at = answers.Time(required=True)


class ModerationActionAnswer(Schema):
    """One row of the audit trail (RPC moderation_log)."""
    report_id = fields.UUID(required=True)
    action = fields.String(required=True)
    operator = fields.String(required=True)
    created_at = answers.Time(required=True)


PUBLIC_USER = PublicUser()
FOLLOW_REQUESTED = FollowRequested()
PRIVATE_USER = PrivateUser()
SESSION = Session()
OPERATOR_USER = OperatorUser()
# What other services show of a user (organizers, authors, members): RPC get_users.
USER_SUMMARY = answers.UserSummary()
REPORT_ANSWER = ReportAnswer()
OPERATOR_REPORT = OperatorReport()
MODERATION_OUTCOME = ModerationOutcome()
MODERATION_ACTION = ModerationActionAnswer()


class AccountExport(Schema):
    """GET /auth/me/export: everything the account owns or wrote (docs/API.md, "Data export")."""
    format = fields.String(required=True, metadata={"enum": ["lifytp-export/1"]})
    exported_at = answers.Time(required=True)
    profile = fields.Nested(PrivateUser, required=True)
    following = fields.List(fields.Dict(), required=True, metadata={
        "description": "{user_id, username, followed_at} of everyone the account follows, oldest first."})
    followers = fields.List(fields.Dict(), required=True, metadata={
        "description": "{user_id, username, followed_at} of everyone who follows the account, oldest first."})
    events_organized = fields.List(fields.Dict(), required=True, metadata={
        "description": "Every event the account organized, cancelled ones too."})
    events_joined = fields.List(fields.Dict(), required=True, metadata={
        "description": "The events the account takes part in, with joined_at."})
    posts = fields.List(fields.Dict(), required=True)
    media = fields.List(fields.Dict(), required=True, metadata={
        "description": "{id, url, content_type, size, created_at} of every upload."})
    conversations = fields.List(fields.Dict(), required=True, metadata={
        "description": "The conversations the account is in or sent messages into, with member_ids."})
    messages_sent = fields.List(fields.Dict(), required=True)
    notifications = fields.List(fields.Dict(), required=True)
    follow_requests_sent = fields.List(fields.Dict(), required=True, metadata={
        "description": "{user_id, username, requested_at} of the private accounts the account asked to follow."})
    blocks = fields.List(fields.Dict(), required=True, metadata={
        "description": "{user_id, username, since} of everyone the account blocks."})
    mutes = fields.List(fields.Dict(), required=True, metadata={
        "description": "{user_id, username, since} of everyone the account mutes."})
    reports = fields.List(fields.Dict(), required=True, metadata={
        "description": "{id, target_type, target_id, reason, details, status, created_at} of the account's reports."})
    truncated = fields.List(fields.String(), required=True, metadata={
        "description": "The sections cut at their cap (10,000 items each); empty if none."})


ACCOUNT_EXPORT = AccountExport()
