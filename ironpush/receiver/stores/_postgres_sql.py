"""The SQL of :class:`~ironpush.receiver.stores._postgres.PostgresStore`: one statement per call,
or per batch of concurrent calls.

``{s}`` is the (quoted) schema name. Times are the server's (``statement_timestamp()`` as epoch
seconds), so hosts whose clocks differ still agree on whose lease ran out. Every decision is a
single statement, so it is atomic without an explicit transaction and costs one round trip.

The quick path's two calls, ``claim`` and ``complete`` (and ``complete_once``), are *batch*
statements: the concurrent calls of one process are folded into one statement
(:mod:`._batch`), their arguments passed as arrays and unnested ``WITH ORDINALITY`` so that
each answer row names its call (``i``, from 1). A batch holds each key once, and its rows are
written in key order: two batches (of any processes) lock the rows they share in the same
order, so they cannot deadlock each other.
"""

from __future__ import annotations

NOW = "extract(epoch FROM statement_timestamp())::float8"
ACTIVE = "('running', 'deferred', 'external')"

#: The statements run as batches, with what each call gives (in this order, in ``calls``).
BATCHED: dict[str, tuple[str, ...]] = {
    "claim": ("m", "sub", "cid", "d", "owner", "lease", "ttl"),
    "complete": ("m", "sub", "outcome", "ttl"),
    "complete_once": ("m", "sub", "outcome", "ttl"),
}

# Each entry upgrades the schema by one version; applied in order inside one transaction,
# under an advisory lock so that several processes starting at once do not collide.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {s}.claims (
        message_id  text NOT NULL,
        subscriber  text NOT NULL,
        state       text NOT NULL,
        claim_id    text,
        lease_until float8 NOT NULL DEFAULT 0,
        delivery    text,
        attempts    integer NOT NULL DEFAULT 1,
        outcome     text,
        owner       text,
        expires_at  float8 NOT NULL,
        PRIMARY KEY (message_id, subscriber)
    );
    CREATE INDEX claims_expiry ON {s}.claims (expires_at);
    CREATE INDEX claims_claim_id ON {s}.claims (claim_id) WHERE claim_id IS NOT NULL;
    CREATE TABLE {s}.outbox (
        id          text PRIMARY KEY,
        kind        text NOT NULL,
        queue       text NOT NULL,
        payload     text NOT NULL,
        attempts    integer NOT NULL DEFAULT 0,
        created_at  float8 NOT NULL,
        next_at     float8 NOT NULL,
        lease_until float8 NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_due ON {s}.outbox (next_at, created_at);
    """,
)

# The takeover rule: idle (failed), a lapsed lease (crashed owner), or a forgotten done.
_TAKE_OVER = (
    "(c.state = 'idle' OR (c.state IN {active} AND c.lease_until <= {now}) "
    "OR (c.state = 'done' AND c.expires_at <= {now}))"
)

# How long past its ``ttl`` a claim's expiry may lie: a claim is written to expire at
# ``now + ttl + _SLACK``, and a completion within ``_SLACK`` seconds with the same ttl keeps
# that expiry instead of rewriting it (the quick path). With the claim id kept too, a quick
# completion rewrites no indexed column, so PostgreSQL updates the row in place (a HOT
# update: no index entry added). A handled message is remembered at least ``ttl`` seconds,
# at most ``_SLACK`` more.
_SLACK = "1.0"

# The calls of a batch, one row each, numbered from 1 (``i``).
# The calls of a batch go as one JSON array of arrays (one parameter: psycopg sends a str as
# it is, where it encodes a Python list element by element) and come out one row each,
# numbered from 1 (``i``).
_CLAIMS_IN = (
    "SELECT v->>0 AS m, v->>1 AS sub, v->>2 AS cid, v->>3 AS d, v->>4 AS owner, "
    "(v->>5)::float8 AS lease, (v->>6)::float8 AS ttl, i "
    "FROM jsonb_array_elements(%(calls)s::jsonb) WITH ORDINALITY AS e(v, i)"
)
_COMPLETIONS_IN = (
    "SELECT v->>0 AS m, v->>1 AS sub, v->>2 AS outcome, (v->>3)::float8 AS ttl, i "
    "FROM jsonb_array_elements(%(calls)s::jsonb) WITH ORDINALITY AS e(v, i)"
)

# Mark messages handled; ``{only}`` is complete_once's guard (complete has none). The newest
# delivery of a claim that was active is kept in the row and returned (RETURNING sees the new
# row: a done row never had an active claim's delivery otherwise); the claim id stays (only
# active claims are matched by it), so that a quick completion rewrites no indexed column.
# -> (i, the newest delivery when the claim was active) for each row written; complete_once
# writes no row for a message handled already.
_COMPLETE = """
    WITH input AS ({completions_in}), up AS (
        INSERT INTO {s}.claims AS c (message_id, subscriber, state, outcome, expires_at)
        SELECT m, sub, 'done', outcome, {now} + ttl FROM input ORDER BY m, sub
        ON CONFLICT (message_id, subscriber) DO UPDATE SET state = 'done',
            delivery = CASE WHEN c.state IN {active} THEN c.delivery END,
            lease_until = 0, owner = NULL, outcome = excluded.outcome,
            expires_at = CASE WHEN c.expires_at BETWEEN excluded.expires_at
                AND excluded.expires_at + {slack} THEN c.expires_at
                ELSE excluded.expires_at END
        {only}
        RETURNING c.message_id, c.subscriber, c.delivery
    )
    SELECT input.i, up.delivery FROM input
    JOIN up ON up.message_id = input.m AND up.subscriber = input.sub
"""

_TEMPLATES = {
    # -> (i, status, attempts, outcome, state, owner, claim id) where status is new/done/busy;
    # no row for a call whose row vanished between the two parts (a purge: claim again).
    # A handled message is not rewritten (no dead tuple per redelivery): the second SELECT
    # reads the rows as they were before this statement.
    "claim": """
        WITH input AS ({claims_in}), up AS (
            INSERT INTO {s}.claims AS c (message_id, subscriber, state, claim_id,
                lease_until, delivery, attempts, owner, expires_at)
            SELECT m, sub, 'running', cid, {now} + lease, d, 1, owner, {now} + ttl + {slack}
            FROM input ORDER BY m, sub
            ON CONFLICT (message_id, subscriber) DO UPDATE SET
                state = CASE WHEN {take_over} THEN 'running' ELSE c.state END,
                claim_id = CASE WHEN {take_over} THEN excluded.claim_id ELSE c.claim_id END,
                lease_until = CASE WHEN {take_over} THEN excluded.lease_until
                    ELSE c.lease_until END,
                delivery = excluded.delivery,
                attempts = CASE WHEN NOT {take_over} THEN c.attempts
                    WHEN c.state = 'done' THEN 1 ELSE c.attempts + 1 END,
                outcome = CASE WHEN {take_over} THEN NULL ELSE c.outcome END,
                owner = CASE WHEN {take_over} THEN excluded.owner ELSE c.owner END,
                expires_at = CASE WHEN {take_over} THEN excluded.expires_at
                    ELSE c.expires_at END
            WHERE NOT (c.state = 'done' AND c.expires_at > {now})
            RETURNING c.message_id, c.subscriber, c.attempts, c.outcome, c.state, c.owner,
                c.claim_id
        )
        SELECT input.i, CASE WHEN up.claim_id = input.cid THEN 'new' ELSE 'busy' END,
            up.attempts, up.outcome, up.state, up.owner, up.claim_id
        FROM input JOIN up ON up.message_id = input.m AND up.subscriber = input.sub
        UNION ALL
        SELECT input.i, 'done', c.attempts, c.outcome, c.state, c.owner, c.claim_id
        FROM input JOIN {s}.claims c ON c.message_id = input.m AND c.subscriber = input.sub
        WHERE NOT EXISTS (
            SELECT 1 FROM up WHERE up.message_id = input.m AND up.subscriber = input.sub)
    """,
    # A dead local owner's claim, taken over only if it is still the one we saw -> attempts
    "takeover": """
        UPDATE {s}.claims SET state = 'running', claim_id = %(cid)s,
            lease_until = {now} + %(lease)s, delivery = %(d)s, attempts = attempts + 1,
            owner = %(owner)s, expires_at = {now} + %(ttl)s + {slack}
        WHERE message_id = %(m)s AND subscriber = %(sub)s AND claim_id = %(old)s
            AND state IN {active}
        RETURNING attempts
    """,
    "hold": """
        UPDATE {s}.claims SET state = %(state)s, lease_until = {now} + %(lease)s
        WHERE message_id = %(m)s AND subscriber = %(sub)s AND claim_id = %(cid)s
            AND state IN {active}
        RETURNING 1
    """,
    "renew": """
        UPDATE {s}.claims SET lease_until = {now} + %(lease)s
        WHERE claim_id = ANY(%(ids)s) AND state IN ('running', 'deferred')
    """,
    "complete": _COMPLETE.replace("{only}", ""),
    "complete_once": _COMPLETE.replace(
        "{only}", "WHERE NOT (c.state = 'done' AND c.expires_at > {now})"
    ),
    "release": """
        UPDATE {s}.claims SET state = 'idle', claim_id = NULL, lease_until = 0, owner = NULL
        WHERE message_id = %(m)s AND subscriber = %(sub)s AND state IN {active}
            AND (%(cid)s::text IS NULL OR claim_id = %(cid)s)
        RETURNING 1
    """,
    "newest": """
        SELECT delivery FROM {s}.claims
        WHERE message_id = %(m)s AND subscriber = %(sub)s AND state IN {active}
    """,
    "purge": """
        DELETE FROM {s}.claims WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM {s}.claims WHERE expires_at < {now}
                AND (state IN ('done', 'idle') OR lease_until < {now})
            LIMIT %(limit)s))
    """,
    "add": """
        INSERT INTO {s}.outbox (id, kind, queue, payload, attempts, created_at, next_at)
        VALUES (%(id)s, %(kind)s, %(queue)s, %(payload)s, %(attempts)s, %(created)s, %(next)s)
        ON CONFLICT (id) DO NOTHING
    """,
    # SKIP LOCKED: concurrent senders each lease different items, none waits for another.
    "take": """
        UPDATE {s}.outbox o SET lease_until = {now} + %(lease)s
        FROM (SELECT id FROM {s}.outbox
              WHERE next_at <= {now} AND lease_until <= {now}
              ORDER BY next_at, created_at LIMIT %(limit)s
              FOR UPDATE SKIP LOCKED) due
        WHERE o.id = due.id
        RETURNING o.id, o.kind, o.queue, o.payload, o.attempts, o.created_at, o.next_at
    """,
    "finish": "DELETE FROM {s}.outbox WHERE id = ANY(%(ids)s)",
    "retry": """
        UPDATE {s}.outbox SET attempts = %(attempts)s, next_at = %(next)s, lease_until = 0
        WHERE id = %(id)s
    """,
    "stats": "SELECT count(*), min(greatest(next_at, lease_until)) FROM {s}.outbox",
}


def _expand(text: str) -> str:
    # Plain replacement, not str.format: the texts also hold psycopg's %(name)s placeholders,
    # and ``{s}`` (the schema) is filled in by the store.
    for name, value in (
        ("{take_over}", _TAKE_OVER),
        ("{now}", NOW),
        ("{active}", ACTIVE),
        ("{slack}", _SLACK),
        ("{claims_in}", _CLAIMS_IN),
        ("{completions_in}", _COMPLETIONS_IN),
    ):
        text = text.replace(name, value)
    return text


SQL: dict[str, str] = {name: _expand(text) for name, text in _TEMPLATES.items()}
