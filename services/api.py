"""The document of the whole HTTP API, built from every service's entrypoints."""
from http_edge.openapi import build_document


def api_document():
    # Imported here: services.auth.service imports this module (auth serves the
    # document), so importing the services at the top would be circular.
    from services.auth.service import AuthService
    from services.events.service import EventsService
    from services.messages.service import MessagesService

    return build_document([AuthService, EventsService, MessagesService])
