from services.shared.errors import Conflict, InvalidInput, NotFound, Unauthenticated


class EmailTaken(Conflict):
    code = "EMAIL_TAKEN"
    message = "That email is already registered."


class UsernameTaken(Conflict):
    code = "USERNAME_TAKEN"
    message = "That username is taken."


class InvalidCredentials(Unauthenticated):
    code = "INVALID_CREDENTIALS"
    message = "Wrong login or password."


class InvalidRefreshToken(Unauthenticated):
    code = "INVALID_REFRESH_TOKEN"
    message = "The refresh token is invalid or expired."


class RefreshTokenReused(Unauthenticated):
    code = "REFRESH_TOKEN_REUSED"
    message = "This refresh token was already used; every session it belongs to is now signed out."


class UserNotFound(NotFound):
    code = "USER_NOT_FOUND"
    message = "No such user."


class CannotFollowYourself(InvalidInput):
    code = "CANNOT_FOLLOW_YOURSELF"
    message = "You cannot follow yourself."


class InvalidAvatar(InvalidInput):
    code = "INVALID_AVATAR"
    message = "The avatar must be an image you uploaded."


class FollowRequestNotFound(NotFound):
    code = "FOLLOW_REQUEST_NOT_FOUND"
    message = "No such follow request."


class CannotRemoveYourself(InvalidInput):
    code = "CANNOT_REMOVE_YOURSELF"
    message = "You are not your own follower."


class CannotReportYourself(InvalidInput):
    code = "CANNOT_REPORT_YOURSELF"
    message = "You cannot report yourself or what you wrote."


class ReportTargetNotFound(NotFound):
    code = "REPORT_TARGET_NOT_FOUND"
    message = "No such user, post, event, message or media that you can see."


class ReportNotFound(NotFound):
    code = "REPORT_NOT_FOUND"
    message = "No such report."


class ReportClosed(Conflict):
    code = "REPORT_CLOSED"
    message = "This report is closed already."


class NotRemovable(InvalidInput):
    code = "NOT_REMOVABLE"
    message = "Only posts, events, media and messages can be removed."


class OperatorNameRequired(InvalidInput):
    code = "OPERATOR_NAME_REQUIRED"
    message = "Name yourself in every moderation action: by=\"your name\"."


class CannotBlockYourself(InvalidInput):
    code = "CANNOT_BLOCK_YOURSELF"
    message = "You cannot block yourself."


class CannotMuteYourself(InvalidInput):
    code = "CANNOT_MUTE_YOURSELF"
    message = "You cannot mute yourself."


class InvalidAccountToken(InvalidInput):
    code = "INVALID_TOKEN"
    message = "This link is invalid, already used or expired; ask for a new one."


class UnacceptablePassword(InvalidInput):
    """A new password the request schema could not judge alone (it names its user)."""
