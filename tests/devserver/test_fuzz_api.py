"""Bad input against the dev server's API (issue 6, point 2): hypothesis drives every endpoint.

The app runs in-process (``create_app`` with its lifespan, on one event loop held by a blocking
portal) and is called through ``httpx.ASGITransport`` or with raw ASGI scopes for what httpx
refuses to send. The pusher is never activated, so nothing leaves the process. Guarantees:

- **every v3 endpoint** with random methods, known/unknown/reserved-character queue names and
  message ids, random query parameters and random bodies (bytes, JSON of any shape, objects
  with the right field names and wrong types, nested too deep, huge integers, NaN, lone
  surrogates, BOMs, UTF-16) answers 2xx or a clean 4xx JSON ``{"msg": ...}``, never a 5xx;
- **random paths** (``..``, ``%2e%2e``, ``%2F``, NUL, long, with or without ``raw_path``) and
  traversal attempts at ``/_dev/reset`` and another project's queue get a 4xx and change
  nothing;
- after every request the server still answers, ``GET /_dev/state`` is consistent (each
  queue's size is the sum of its states, ``live`` is the sum of sizes), the queue just touched
  still renders, and a sentinel project nobody targets is intact;
- **queue names with reserved characters** round-trip (create, read, list, delete);
- **authorization**: any header or ``oauth`` value other than the token gets 401;
- **malformed HTTP framing** (raw ASGI: non-latin-1 and CR/LF header bytes, lying or garbage
  ``Content-Length``, chunked bodies, disconnects) never gives a 5xx; over a **real socket**
  garbage gets a 4xx or a closed connection and the server keeps serving.

Every defect found is pinned as a plain ``test_regression_*`` test. Elsewhere: the API's
documented 400s in ``tests/devserver/test_api_errors.py`` (``test_bad_input_gets_a_precise_400``),
the receiver's bad input in ``tests/test_fuzz_receiver.py``, secrets and the loopback bind in
``tests/test_security.py``. ``IRONPUSH_FUZZ_EXAMPLES`` scales the example counts.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fuzz_kit import (
    API_STATUSES,
    FUZZ,
    METHODS,
    PROJECT,
    TEMPLATES,
    TOKEN,
    Dev,
    bad_values,
    bodies,
    dev,
    dumped,
    leaf_paths,
    messages,
    no_long_poll,
    prepare,
    queries,
    query_values,
    queue_names,
    replaced,
    segment,
)
from hypothesis import assume, example, given
from hypothesis import strategies as st

from ironpush.devserver._routes import ROUTES

__all__ = ["dev"]  # fixtures


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    method=st.none() | st.sampled_from(METHODS),
    queue=queue_names,
    data=st.data(),
    body=bodies,
    query=queries,
)
def test_every_endpoint_answers_random_input_with_2xx_or_a_clean_4xx(
    dev: Dev,
    route: tuple[str, tuple[str, ...], Any],
    method: str | None,
    queue: str,
    data: st.DataObject,
    body: bytes | None,
    query: dict[str, str],
) -> None:
    known_ids = prepare(dev)
    route_method, pattern, _ = route
    values = {
        "{q}": queue,
        "{id}": data.draw(st.sampled_from(known_ids) | st.text(min_size=1, max_size=20)),
        "{name}": data.draw(st.sampled_from(["", "fz-push", "nope"]) | st.text(max_size=10)),
        "{aid}": data.draw(st.text(min_size=1, max_size=10)),
    }
    parts = [values.get(p, p) for p in pattern]
    path = f"/3/projects/{PROJECT}/" + "/".join(segment(p) for p in parts)

    answer = dev.request(method or route_method, path, content=body, params=query)

    assert answer.status_code in API_STATUSES, (answer.status_code, answer.text)
    if answer.status_code >= 400 and (method or route_method) != "HEAD":
        assert isinstance(answer.json()["msg"], str), answer.text
    elif answer.content:
        answer.json()  # 2xx answers are JSON
    dev.check(queue=queue)


@FUZZ
@given(template=st.sampled_from(TEMPLATES), data=st.data())
def test_one_bad_field_in_an_otherwise_valid_body_is_a_clean_4xx(
    dev: Dev, template: tuple[str, str, tuple[str, ...], Any], data: st.DataObject
) -> None:
    prepare(dev)
    method, queue, rest, body = template
    paths = leaf_paths(body)
    path = data.draw(st.sampled_from(paths), label="field")
    value = data.draw(bad_values, label="value")
    mutated = no_long_poll(replaced(body, path, value))
    url = f"/3/projects/{PROJECT}/queues/" + "/".join(segment(p) for p in (queue, *rest))

    answer = dev.request(method, url, content=dumped(mutated))

    assert answer.status_code in API_STATUSES, (mutated, answer.status_code, answer.text)
    if answer.status_code >= 400:
        assert isinstance(answer.json()["msg"], str), answer.text
    dev.check(queue=queue)


@FUZZ
@given(
    path=st.sampled_from(["/_dev/deliveries", "/_dev/state", "/_dev/health"]),
    method=st.sampled_from(METHODS),
    limit=query_values,
    query=st.fixed_dictionaries(
        {}, optional=dict.fromkeys(("queue", "project", "message_id"), query_values)
    ),
)
def test_control_plane_answers_random_queries_with_json(
    dev: Dev, path: str, method: str, limit: str, query: dict[str, str]
) -> None:
    answer = dev.request(method, path, params={**query, "limit": limit})
    assert answer.status_code in (200, 400, 404, 405), (answer.status_code, answer.text)
    if method != "HEAD":
        answer.json()
    dev.check()


@FUZZ
@given(name=st.text(min_size=1, max_size=40))
@example(name="\n")  # found by the fuzzer: created by PUT, then 404 for everything else
@example(name="a\nb/c?d#e%f ..")
def test_queue_names_with_reserved_characters_round_trip(dev: Dev, name: str) -> None:
    project = "names"
    assert dev.api("PUT", project, "queues", name, body={}).status_code == 200
    posted = dev.api("POST", project, "queues", name, "messages", body=messages(1))
    assert posted.status_code == 201, posted.text
    info = dev.api("GET", project, "queues", name)
    assert (info.status_code, info.json()["queue"]["name"]) == (200, name)
    assert info.json()["queue"]["size"] == 1
    listed = dev.request("GET", f"/3/projects/{project}/queues", params={"prefix": name})
    assert name in [q["name"] for q in listed.json()["queues"]]
    assert dev.api("DELETE", project, "queues", name).status_code == 200
    assert dev.api("GET", project, "queues", name).status_code == 404
    dev.check(project)


def near_misses(token: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=60),
        st.sampled_from(
            [
                b"",
                b"OAuth",
                b"OAuth ",
                f"OAuth {token[:-1]}".encode(),
                f"OAuth {token}x".encode(),
                f"OAuth {token.upper()}".encode(),
                f"Basic {token}".encode(),
                f"OAuth{token}".encode(),
                f"OAuth {token}\x00".encode(),
                token.encode(),
                f"OAuth {token}".encode("utf-16"),
                f"OAuth {token}".encode().replace(b"0", "\u0660".encode()),
            ]
        ),
        st.text(max_size=40).map(lambda t: f"OAuth {t}".encode()),
    ).filter(lambda v: v.decode("latin-1").partition(" ")[2].strip() != token)


@FUZZ
@given(data=st.data(), query=st.text(max_size=30), path=st.sampled_from(["/_dev/state", "/3/x"]))
def test_any_credential_but_the_token_gets_401(
    dev: Dev, data: st.DataObject, query: str, path: str
) -> None:
    assume(query != TOKEN)
    header = data.draw(near_misses(TOKEN))
    if path == "/3/x":
        path = f"/3/projects/{PROJECT}/queues"
    answer = dev.raw(
        "GET",
        path,
        headers=[(b"authorization", header)],
        query=b"oauth=" + quote(query).encode(),
        authorized=False,
    )
    assert answer.status == 401, (header, answer)
    assert json.loads(answer.body) == {"msg": "Invalid token"}
    ok = dev.raw("GET", path, query=b"oauth=" + TOKEN.encode(), authorized=False)
    assert ok.status == 200
