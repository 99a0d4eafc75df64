"""The OpenAPI 3.1 document of the HTTP API, generated from the entrypoints.

Every `@http` entrypoint names the schemas it validates with (`body=`,
`query=`) and those it answers with (`responses=`); the document is built from
those very objects, so what it describes is what the services accept.
services.api serves it at `/openapi.json`, with Swagger UI at `/docs` from
the `openapi-ui-bundles` package (no CDN).
"""
import mimetypes
import os
import re
from collections import defaultdict
from typing import Any

import openapi_ui_bundles
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from werkzeug.wrappers import Response

from http_edge.entrypoint import JsonHttpEntrypoint

ERROR_DESCRIPTIONS = {
    400: "Malformed request (the body is not JSON, or not an object).",
    401: "Missing, invalid or expired access token.",
    403: "Not allowed.",
    404: "Not found, or not visible to the caller.",
    409: "Conflicts with the current state.",
    413: "Too large.",
    415: "Unsupported content type.",
    422: "Field validation failed; `details` names the fields.",
    429: "Rate limited; see Retry-After.",
    503: "A dependency is down or the replica is draining; retry shortly.",
}
_PATH_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-zA-Z_]+)>")


class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={"example": "VALIDATION_FAILED"})
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class Error(Schema):
    error = fields.Nested(ErrorDetail, required=True)


def http_entrypoints(service_cls):
    """(method name, handler, entrypoint) for every @http entrypoint of a service class."""
    for name in sorted(dir(service_cls)):
        handler = getattr(service_cls, name)
        for entrypoint in getattr(handler, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, JsonHttpEntrypoint):
                yield name, handler, entrypoint


def build_document(service_classes, title="LifyTP API", version="1"):
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title=title, version=version, openapi_version="3.1.0", plugins=[marshmallow],
        info={"description": "The HTTP API of LifyTP. Authenticate with `Authorization: Bearer <access_token>` "
                             "from `POST /auth/login` or `POST /auth/register`."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", schema=Error)
    paths: defaultdict[str, dict[str, Any]] = defaultdict(dict)
    seen = set()
    for service_cls in service_classes:
        for name, handler, entrypoint in http_entrypoints(service_cls):
            path, parameters = openapi_path(entrypoint.url)
            for method in entrypoint.method.lower().split(","):
                if (path, method) in seen:  # /health and /ready: every service has them
                    continue
                seen.add((path, method))
                paths[path][method] = _operation(
                    service_cls.name, name, handler, entrypoint, parameters, marshmallow.converter)
    for path in sorted(paths):
        spec.path(path=path, operations=paths[path])
    return spec.to_dict()


def openapi_path(url):
    """`/users/<string:id>/follow` -> (`/users/{id}/follow`, ["id"])."""
    return _PATH_PARAMETER.sub(r"{\1}", url), _PATH_PARAMETER.findall(url)


def _path_schema(name, entrypoint, converter):
    if name in entrypoint.path:
        return converter.field2property(entrypoint.path[name])
    return {"type": "string", "format": "uuid"} if name.endswith("id") else {"type": "string"}


def _operation(service_name, method_name, handler, entrypoint, path_parameters, converter):
    doc = (handler.__doc__ or "").strip()
    operation: dict[str, Any] = {
        "operationId": f"{service_name}.{method_name}",
        "tags": [service_name],
        "summary": doc.splitlines()[0] if doc else method_name.replace("_", " "),
        "parameters": [
            {"in": "path", "name": name, "required": True, "schema": _path_schema(name, entrypoint, converter)}
            for name in path_parameters
        ],
        "responses": {},
    }
    if entrypoint.query is not None:
        operation["parameters"].append({"in": "query", "schema": entrypoint.query})
    if entrypoint.body is not None:
        operation["requestBody"] = _request_body(entrypoint.body)
    if not entrypoint.public:
        operation["security"] = [{"bearer": []}]
    for status, answer in entrypoint.responses.items():
        operation["responses"][str(status)] = _response(answer)
    for status in sorted(_error_statuses(entrypoint, path_parameters)):
        operation["responses"][str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": "Error"}},
        }
    return operation


def _request_body(body):
    if isinstance(body, dict):  # a raw OpenAPI requestBody, e.g. multipart uploads
        return body
    return {"required": True, "content": {"application/json": {"schema": body}}}


def _response(answer):
    if answer is None:
        return {"description": "No content."}
    if isinstance(answer, dict):  # raw OpenAPI response, e.g. text/calendar
        return answer
    return {"description": "OK.", "content": {"application/json": {"schema": answer}}}


def _error_statuses(entrypoint, path_parameters):
    statuses = {503} | set(entrypoint.errors)
    if entrypoint.body is not None:
        statuses |= {400, 413, 415, 422}
    if entrypoint.query is not None:
        statuses.add(422)
    if not entrypoint.public:
        statuses.add(401)
    if path_parameters:
        statuses.add(404)
    return statuses


SWAGGER_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>LifyTP API</title>
  <link rel="stylesheet" href="swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="swagger-ui-bundle.js"></script>
  <script src="start.js"></script>
</body>
</html>
"""
# A file of its own rather than an inline script, so the page's CSP can
# forbid inline scripts.
SWAGGER_START = """window.ui = SwaggerUIBundle({
  url: "../openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
});
"""
# Swagger UI sets style attributes, and shows images as data: URLs.
DOCS_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                                "frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def docs_page(name):
    """The Swagger UI page of the document (`/docs/<name>`; "" for the page
    itself, None for `/docs`, which moves to `/docs/` so relative links resolve)."""
    if name is None:
        response = Response(status=301, headers={"Location": "/docs/"})
    elif name == "":
        response = Response(SWAGGER_INDEX, mimetype="text/html")
    elif name == "start.js":
        response = Response(SWAGGER_START, mimetype="text/javascript")
    else:
        response = _static_file(name)
    response.headers.update(DOCS_HEADERS)
    return response


def document_response(document_json):
    return Response(document_json, mimetype="application/json")


def _static_file(name):
    directory = openapi_ui_bundles.swagger_ui.static_path
    if "/" in name or name.startswith(".") or not os.path.isfile(os.path.join(directory, name)):
        return Response("Not found", status=404)
    with open(os.path.join(directory, name), "rb") as handle:
        content = handle.read()
    return Response(content, mimetype=mimetypes.guess_type(name)[0] or "application/octet-stream",
                    headers={"Cache-Control": "public, max-age=3600"})
