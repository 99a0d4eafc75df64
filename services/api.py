"""The document of the whole HTTP API, built from every service's entrypoints."""
from http_edge.openapi import build_document


def api_document():
    # Imported here: each service module imports this one to serve the document.
    from services.auth.service import AuthService
    from services.events.service import EventsService
    from services.messages.service import MessagesService

    return build_document([AuthService, EventsService, MessagesService])
