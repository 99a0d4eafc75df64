"""The shared HTTP edge: error mapping, cursors, field validation, tokens."""
import base64
import hashlib
import hmac
import io
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from marshmallow import Schema
from nameko.exceptions import RemoteError, UnknownService
from sqlalchemy.exc import OperationalError

from http_edge import fields
from http_edge.errors import error_response
from http_edge.pagination import BY_SEQUENCE, BY_TIME, Keyset, name_part, page
from http_edge.uploads import read_upload
from http_edge.validation import load
from services.shared import errors
from services.shared.tokens import InvalidToken, TokenSigner, TokenVerifier, new_key_pair


def body_of(response):
    return json.loads(response.get_data())


@pytest.mark.parametrize("exc, status, code", [
    (errors.InvalidInput(details={"x": ["bad"]}), 422, "VALIDATION_FAILED"),
    (errors.NotFound(), 404, "NOT_FOUND"),
    (errors.Conflict(code="EMAIL_TAKEN"), 409, "EMAIL_TAKEN"),
    (errors.RateLimited(retry_after=30), 429, "RATE_LIMITED"),
    (OperationalError("SELECT 1", {}, Exception("connection refused")), 503, "SERVICE_UNAVAILABLE"),
    (UnknownService("events"), 503, "SERVICE_UNAVAILABLE"),
    (RemoteError("ValueError", "boom"), 503, "DEPENDENCY_FAILED"),
    (ZeroDivisionError(), 500, "INTERNAL_ERROR"),
])
def test_failures_map_to_one_status_and_the_error_format(exc, status, code):
    response = error_response(exc)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert body_of(response)["error"]["code"] == code
    assert set(body_of(response)["error"]) == {"code", "message", "details"}


def test_rate_limited_says_when_to_retry():
    assert error_response(errors.RateLimited(retry_after=42)).headers["Retry-After"] == "42"


def test_internal_errors_reveal_nothing():
    response = error_response(RuntimeError("password=hunter2 at db host"))
    assert "hunter2" not in response.get_data(as_text=True)


MOMENT = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
SOME_ID = "6f1e2d3c-4b5a-4968-8776-655443322110"


def test_cursor_round_trip():
    cursor = BY_TIME.encode((MOMENT, SOME_ID))
    assert cursor == "1795456800000000.6f1e2d3c4b5a49688776655443322110"
    assert BY_TIME.decode(cursor) == (MOMENT, SOME_ID)
    assert BY_TIME.decode(None) is None
    early = datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=UTC)
    assert BY_TIME.decode(BY_TIME.encode((early, SOME_ID)))[0] == early
    assert BY_SEQUENCE.decode(BY_SEQUENCE.encode((2**59,))) == (2**59,)


@pytest.mark.parametrize("cursor", [
    "", "!!!", "1795456800000000", "1795456800000000.6F1E2D3C4B5A49688776655443322110",
    "17954568000000000.6f1e2d3c4b5a49688776655443322110",  # 17 digits: past the year 2286
    "1795456800000000.6f1e2d3c4b5a49688776655443322110\n", "1795456800000000.6f1e2d3c4b5a4968877665544332211\x00",
    "+1.6f1e2d3c4b5a49688776655443322110", "1.6f1e2d3c4b5a49688776655443322110.1",
    "WyIyMDI2LTExLTIzVDE4OjAwOjAwKzAwOjAwIiwiNmYxZSJd",  # the base64-of-JSON cursors of earlier versions
])
def test_a_cursor_that_does_not_match_its_pattern_is_refused(cursor):
    with pytest.raises(errors.InvalidInput) as refused:
        BY_TIME.decode(cursor)
    assert refused.value.code == "INVALID_CURSOR"


@pytest.fixture
def hypothesis_caches_in_tmp():
    """Hypothesis caches what it learns (Unicode tables, constants) in its home,
    .hypothesis/ in the checkout by default: here one under the temporary
    directory, kept between runs because building them takes seconds."""
    from hypothesis import configuration

    configuration.set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "lifytp-hypothesis"))
    yield
    configuration.set_hypothesis_home_dir(None)


@pytest.mark.parametrize("keyset", [BY_TIME, BY_SEQUENCE, Keyset(name_part("[a-z0-9_]{3,30}"))])
def test_every_string_matching_a_documented_pattern_is_a_valid_position(keyset, hypothesis_caches_in_tmp):
    # What a generated client or a fuzzer may send: the pattern's extremes.
    import hypothesis
    from hypothesis import strategies

    @hypothesis.given(strategies.from_regex(keyset.pattern, fullmatch=True))
    # No example database: a unit test writes no file in the checkout.
    @hypothesis.settings(max_examples=200, deadline=None, database=None)
    def decodes(cursor):
        key = keyset.decode(cursor)
        assert keyset.decode(keyset.encode(key)) == key

    decodes()


def test_query_parameters_with_control_characters_or_too_long_are_refused_before_the_schema():
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from http_edge.pagination import PageArgs
    from http_edge.validation import query_args

    for query in ({"limit": "1\x00"}, {"cursor": "A" * 2000}, {"cursor": "abc\x1f"}):
        request = Request(EnvironBuilder(query_string=query).get_environ())
        with pytest.raises(errors.InvalidInput) as refused:
            query_args(request, PageArgs())
        assert set(refused.value.details) == set(query)
    ignored = Request(EnvironBuilder(query_string={"_": "\x00", "limit": "5"}).get_environ())
    assert query_args(ignored, PageArgs())["limit"] == 5  # parameters nobody reads are not checked


def test_the_api_document_states_each_lists_cursor_format():
    from services.api import api_document

    document = api_document()

    def cursor_pattern(path):
        parameters = document["paths"][path]["get"]["parameters"]
        return next(parameter["schema"]["pattern"] for parameter in parameters if parameter["name"] == "cursor")

    assert cursor_pattern("/feed") == BY_TIME.pattern
    assert cursor_pattern("/messages/conversations/{id}/messages") == BY_SEQUENCE.pattern
    assert cursor_pattern("/users") == "^[a-z0-9_]{3,30}$"


def test_page_has_a_next_cursor_only_when_more_rows_exist():
    rows = [1, 2, 3]
    assert page(rows, 3, lambda r: (r,), str)["next_cursor"] is None
    more = page(rows, 2, lambda r: (r,), str, BY_SEQUENCE)
    assert more["items"] == ["1", "2"] and BY_SEQUENCE.decode(more["next_cursor"]) == (2,)


class NameSchema(Schema):
    name = fields.Text(min=1, max=5)
    note = fields.Text(max=50, multiline=True)
    count = fields.StrictInteger()
    flag = fields.StrictBoolean()


@pytest.mark.parametrize("data, field", [
    ({"name": "toolong"}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"name": "a\nb"}, "name"),
    ({"name": 5}, "name"),
    ({"note": "\u202e\x07"}, "note"),
    ({"count": "5"}, "count"),
    ({"count": True}, "count"),
    ({"flag": "yes"}, "flag"),
    ({"other": 1}, "other"),
])
def test_fields_reject_what_the_database_should_not_see(data, field):
    with pytest.raises(errors.InvalidInput) as failure:
        load(NameSchema(), data)
    assert field in failure.value.details


def test_text_is_normalised():
    assert load(NameSchema(), {"name": " e\u0301 ", "note": "two\nlines"}) == {"name": "\u00e9", "note": "two\nlines"}


def test_tokens_verify_with_the_public_key_only():
    private, public = new_key_pair()
    token = TokenSigner(private, 900).sign("5b1e4f4e-8a8a-4b7b-9d5c-3a2b1c0d9e8f")
    assert TokenVerifier(public).verify(token) == "5b1e4f4e-8a8a-4b7b-9d5c-3a2b1c0d9e8f"


def _hs256_signed_with(secret, claims):
    """A token MACed with the public key as an HMAC secret (PyJWT itself refuses to make one)."""
    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=")
    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


def test_forged_tokens_are_refused():
    private, public = new_key_pair()
    other_private, _ = new_key_pair()
    verifier = TokenVerifier(public)
    user = "5b1e4f4e-8a8a-4b7b-9d5c-3a2b1c0d9e8f"
    now = int(time.time())
    claims = {"sub": user, "iss": "lifytp-auth", "aud": "lifytp", "iat": now, "exp": now + 60}
    forged = [
        TokenSigner(other_private, 900).sign(user),                       # wrong key
        TokenSigner(private, 900).sign(user, now=now - 3600),             # expired
        jwt.encode(claims, None, algorithm="none"),                       # alg: none
        _hs256_signed_with(public, claims),                              # key confusion
        "a.b.c",                                                          # garbage
        jwt.encode(dict(claims, aud="elsewhere"), serialization.load_pem_private_key(private, None),
                   algorithm="EdDSA"),                                    # wrong audience
        jwt.encode(dict(claims, sub="not-a-uuid"), serialization.load_pem_private_key(private, None),
                   algorithm="EdDSA"),                                    # malformed subject
    ]
    for token in forged:
        with pytest.raises(InvalidToken):
            verifier.verify(token)


def _multipart_request(data, filename="photo.jpg"):
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    builder = EnvironBuilder(method="POST", data={"file": (io.BytesIO(data), filename, "image/jpeg")})
    return Request(builder.get_environ())


@pytest.mark.parametrize("seed", range(4))
def test_a_multi_megabyte_upload_full_of_line_breaks_is_read_whole(seed):
    """werkzeug's decoder keeps a possible partial boundary after every CR or LF
    near the end of a read: with the form memory limit at one read, that made
    photos over about 64 KB fail with 413 at random."""
    rng = random.Random(seed)
    alphabet = bytes(b"\r\n\x00\xff abc"[byte % 8] for byte in range(256))
    data = b"\xff\xd8\xff\xe0" + rng.randbytes(3 * 1024 * 1024).translate(alphabet)
    assert read_upload(_multipart_request(data), "file", 10 * 1024 * 1024) == data


def test_an_upload_over_its_limit_is_refused_with_413():
    with pytest.raises(errors.TooLarge):
        read_upload(_multipart_request(b"x" * 200_000), "file", 100_000)


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan", "inf"])
def test_listener_settings_must_be_positive_numbers(value):
    from nameko.exceptions import ConfigurationError

    from http_edge.server import _positive

    with pytest.raises(ConfigurationError):
        _positive({"HTTP_BODY_TIMEOUT_SECONDS": value}, "HTTP_BODY_TIMEOUT_SECONDS", 30)
    assert _positive({}, "HTTP_BODY_TIMEOUT_SECONDS", 30) == 30
    assert _positive({"HTTP_BODY_TIMEOUT_SECONDS": 2.5}, "HTTP_BODY_TIMEOUT_SECONDS", 30) == 2.5
