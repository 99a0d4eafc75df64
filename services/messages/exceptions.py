from services.shared.errors import Conflict, Forbidden, InvalidInput, NotFound


class ConversationNotFound(NotFound):
    code = "CONVERSATION_NOT_FOUND"
    message = "No such conversation."


class MessageNotFound(NotFound):
    code = "MESSAGE_NOT_FOUND"
    message = "No such message."


class UnknownMembers(InvalidInput):
    code = "UNKNOWN_MEMBERS"
    message = "Some member ids are not active users."


class NoOtherMembers(InvalidInput):
    code = "NO_OTHER_MEMBERS"
    message = "A conversation needs at least one member besides you."


class ClientIdReused(Conflict):
    code = "CLIENT_ID_REUSED"
    message = "This client_id was already used for a different message."


class GroupInvitesRefused(Forbidden):
    code = "GROUP_INVITES_REFUSED"
    message = "Some of these people do not let you add them to a group."
