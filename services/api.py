"""The composition root: the services that make up LifyTP's HTTP API, and the
one document that describes it.

`ApiDocsService` serves that document at `/openapi.json` and Swagger UI at
`/docs/`. It runs beside auth in auth's process (`nameko run
services.auth.service services.api`), since auth runs in every deployment;
no service module imports this one.
"""
import functools
import json

from http_edge.entrypoint import http
from http_edge.openapi import build_document, docs_page, document_response
from services.auth import service as auth
from services.events import service as events
from services.messages import service as messages

# Reached through their modules: `nameko run services.api` must find no
# service class here but the one it is meant to run.
API_SERVICES = (auth.AuthService, events.EventsService, messages.MessagesService)


def api_document():
    return build_document(API_SERVICES)


@functools.lru_cache(maxsize=1)
def _document_json():
    return json.dumps(api_document())


class ApiDocsService:
    name = "api_docs"

    @http("GET", "/openapi.json", public=True)
    def openapi_document(self, request):
        return document_response(_document_json())

    @http("GET", "/docs", public=True)
    def docs_home(self, request):
        return docs_page(None)

    @http("GET", "/docs/", public=True)
    def docs_index(self, request):
        return docs_page("")

    @http("GET", "/docs/<path:name>", public=True)
    def docs_file(self, request, name):
        return docs_page(name)
