"""The JSON HTTP entrypoint every service's HTTP boundary uses.

    @http("GET", "/auth/me", responses={200: schemas.PrivateUser})   # bearer token required
    def me(self, request): ...                                        # request.user_id is the caller
                                                                      # (request.session_id: its session)

    @http("POST", "/auth/login", public=True, body=schemas.LoginRequest, errors=(401, 429))
    def login(self, request): ...                                     # request.body is validated

`body` and `query` are marshmallow schemas checked before any worker runs
(the results are `request.body` and `request.query`); `responses` and `errors`
describe the answers. Ids in paths are declared `<uuid:id>`: the handler gets
the canonical string, and a segment that is no UUID is answered `not_found`
(the resource's own 404, NOT_FOUND unless given) before any worker runs.
`http_edge.openapi` builds the API document from these same declarations, so
the document is what the code accepts.

A handler returns a dict or list (200), `(status, payload)`, None (204) or a
werkzeug Response. Anything it raises goes through `http_edge.errors`.

Every request gets an X-Request-ID (the client's, if well formed) that rides in
the worker's context data, so Nameko carries it over RPC calls and events.

`worker=False` answers on the connection's own greenlet instead of in a
worker: the handler gets a bare service instance (no dependencies, no worker
context). That is for answers that must not queue for one of `max_workers`
behind slow work (the liveness probe, `/health`), and only for handlers that
do nothing but compute their answer.
"""
import time
from functools import partial

from eventlet.event import Event
from nameko.web.handlers import HttpRequestHandler
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from http_edge.access import log_request
from http_edge.errors import error_response, json_response
from http_edge.request_ids import REQUEST_ID_HEADER, request_id_from
from http_edge.server import EdgeWebServer, MalformedId, ShuttingDown
from http_edge.validation import json_body, query_args
from services.shared.errors import DependencyUnavailable, DomainError, NotFound, Unauthenticated
from services.shared.revocation import RevocationUnknown, revocation_list
from services.shared.tokens import InvalidToken, max_token_age, verifier_from_file

__all__ = ["JsonHttpEntrypoint", "http", "bearer_token", "request_id_from", "REQUEST_ID_HEADER"]

CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-ID",
    "Access-Control-Expose-Headers": "X-Request-ID, Retry-After",
    "Access-Control-Max-Age": "600",
}


def bearer_token(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(code="TOKEN_MISSING")
    return token.strip()


class JsonHttpEntrypoint(HttpRequestHandler):
    server = EdgeWebServer()

    def __init__(self, method, url, public=False, body=None, query=None, responses=None, errors=(), path=None,
                 not_found=NotFound, worker=True, **kwargs):
        self.public = public
        self.worker = worker
        self.not_found = not_found
        # Fields describing path parameters other than ids, for the document.
        self.path = path or {}
        self.body = body
        self.query = query
        self.responses = responses or {}
        self.errors = tuple(errors)
        # Built once: a marshmallow schema instance serves any number of loads,
        # and building one per request would copy its fields every time.
        self._body_schema = body() if _is_schema(body) else None
        self._query_schema = query() if query is not None else None
        # Domain errors are answers, not crashes: Nameko logs them briefly.
        kwargs.setdefault("expected_exceptions", DomainError)
        super().__init__(method, url, **kwargs)

    def setup(self):
        super().setup()
        # Read once: every answer consults it.
        self._cors_origins = cors_origins(self.container.config)
        # One per process, shared by every route (services.shared.revocation).
        self._revocations = revocation_list(self.container.config)

    def get_url_rule(self):
        # OPTIONS on every route answers CORS preflights before any auth.
        return Rule(self.url, methods=self.method.split(",") + ["OPTIONS"])

    def handle_request(self, request):
        started = time.monotonic()
        request.shallow = False
        request.request_id = request_id_from(request)
        request.user_id = None
        request.session_id = None
        if request.method == "OPTIONS":
            response = Response(status=204)
        elif self.server.draining:
            response = error_response(ShuttingDown())
            response.headers["Connection"] = "close"
        else:
            response = self._run_worker(request)
        response.headers[REQUEST_ID_HEADER] = request.request_id
        self._add_cors_headers(request, response)
        service = self.container.service_name
        log_request(request, response, time.monotonic() - started, service, self.url,
                    f"{service}.{self.method_name}")
        return response

    def stop(self):
        # First step of a graceful stop: refuse new requests, /ready included.
        self.server.drain()
        super().stop()

    def _run_worker(self, request):
        try:
            if not self.public:
                token = self._verify(bearer_token(request))
                request.user_id, request.session_id = token.user_id, token.session_id
            self._validate(request)
            context_data = {"request_id": request.request_id}
            if request.user_id:
                context_data["user_id"] = request.user_id
            args, kwargs = self.get_entrypoint_parameters(request)
            if any(isinstance(value, MalformedId) for value in kwargs.values()):
                raise self.not_found()
            self.check_signature(args, kwargs)
            if not self.worker:
                return self.response_from_result(self._answer_here(args, kwargs))
            done = Event()
            self.container.spawn_worker(
                self, args, kwargs, context_data=context_data,
                handle_result=partial(self.handle_result, done),
            )
            return self.response_from_result(done.wait())
        except Exception as exc:
            return self.response_from_exception(exc)

    def _answer_here(self, args, kwargs):
        # As Nameko builds a worker's service instance, minus the dependencies
        # it would inject: one that needs them fails loudly, never silently.
        service = self.container.service_cls()
        return getattr(service, self.method_name)(*args, **kwargs)

    def _validate(self, request):
        request.body = json_body(request, self._body_schema) if self._body_schema is not None else None
        request.query = query_args(request, self._query_schema) if self._query_schema is not None else None

    def _verify(self, token):
        """The verified token (services.shared.tokens.VerifiedToken): signed,
        not too old, and neither its account nor its session revoked."""
        config = self.container.config
        verifier = verifier_from_file(config["JWT_PUBLIC_KEY_PATH"], max_token_age(config))
        try:
            verified = verifier.verify_token(token)
        except InvalidToken:
            raise Unauthenticated("The access token is invalid or expired.", code="TOKEN_INVALID") from None
        try:
            revoked = self._revocations.is_revoked(verified)
        except RevocationUnknown:
            raise DependencyUnavailable("Cannot check the access token now; try again.",
                                        code="REVOCATION_UNAVAILABLE") from None
        if revoked:
            raise Unauthenticated("The access token was revoked; sign in again.", code="TOKEN_REVOKED")
        return verified

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, payload = result if isinstance(result, tuple) else (200, result)
        if payload is None:
            return Response(status=204 if status == 200 else status)
        return json_response(payload, status)

    def response_from_exception(self, exc):
        return error_response(exc)

    def _add_cors_headers(self, request, response):
        origin = request.headers.get("Origin")
        response.headers.add("Vary", "Origin")
        if origin and ("*" in self._cors_origins or origin.rstrip("/") in self._cors_origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers.update(CORS_HEADERS)


def cors_origins(config):
    """The origins whose browser pages may call the API: CORS_ALLOWED_ORIGINS
    (comma-separated; "*" for any). The mobile app sends no Origin and needs none."""
    return frozenset(item.strip().rstrip("/") for item in str(config.get("CORS_ALLOWED_ORIGINS") or "").split(",")
                     if item.strip())


def _is_schema(declared):
    # A dict is a raw OpenAPI body (e.g. multipart) the handler reads itself.
    return declared is not None and not isinstance(declared, dict)


http = JsonHttpEntrypoint.decorator
