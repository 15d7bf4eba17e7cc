"""The SQL of :class:`~ironpush.receiver.stores._postgres.PostgresStore`: one statement per call.

``{s}`` is the (quoted) schema name. Times are the server's (``statement_timestamp()`` as epoch
seconds), so hosts whose clocks differ still agree on whose lease ran out. Every decision is a
single statement, so it is atomic without an explicit transaction and costs one round trip.
"""

from __future__ import annotations

NOW = "extract(epoch FROM statement_timestamp())::float8"
ACTIVE = "('running', 'deferred', 'external')"

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

# Mark a message handled; ``{only}`` is complete_once's guard (complete has none).
_COMPLETE = """
    WITH old AS (
        SELECT state, delivery FROM {s}.claims
        WHERE message_id = %(m)s AND subscriber = %(sub)s FOR UPDATE
    ), up AS (
        INSERT INTO {s}.claims AS c (message_id, subscriber, state, outcome, expires_at)
        VALUES (%(m)s, %(sub)s, 'done', %(outcome)s, {now} + %(ttl)s)
        ON CONFLICT (message_id, subscriber) DO UPDATE SET state = 'done',
            claim_id = NULL, lease_until = 0, delivery = NULL, owner = NULL,
            outcome = excluded.outcome, expires_at = excluded.expires_at
        {only}
        RETURNING 1
    )
    SELECT (SELECT delivery FROM old WHERE state IN {active}), (SELECT count(*) FROM up)
"""

_TEMPLATES = {
    # -> (status, attempts, outcome, state, owner, claim id) where status is new/done/busy.
    # A handled message is not rewritten (no dead tuple per redelivery): the second SELECT
    # reads the row as it was before this statement.
    "claim": """
        WITH up AS (
            INSERT INTO {s}.claims AS c (message_id, subscriber, state, claim_id,
                lease_until, delivery, attempts, owner, expires_at)
            VALUES (%(m)s, %(sub)s, 'running', %(cid)s, {now} + %(lease)s, %(d)s, 1, %(owner)s,
                {now} + %(ttl)s)
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
            RETURNING CASE WHEN c.claim_id = %(cid)s THEN 'new' ELSE 'busy' END,
                c.attempts, c.outcome, c.state, c.owner, c.claim_id
        )
        SELECT * FROM up
        UNION ALL
        SELECT 'done', attempts, outcome, state, owner, claim_id FROM {s}.claims
        WHERE message_id = %(m)s AND subscriber = %(sub)s AND NOT EXISTS (SELECT 1 FROM up)
    """,
    # A dead local owner's claim, taken over only if it is still the one we saw -> attempts
    "takeover": """
        UPDATE {s}.claims SET state = 'running', claim_id = %(cid)s,
            lease_until = {now} + %(lease)s, delivery = %(d)s, attempts = attempts + 1,
            owner = %(owner)s, expires_at = {now} + %(ttl)s
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
    # -> (the newest delivery when the claim was active, read before this statement's update;
    # 1, or 0 when complete_once found the message handled already and changed nothing)
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
    for name, value in (("{take_over}", _TAKE_OVER), ("{now}", NOW), ("{active}", ACTIVE)):
        text = text.replace(name, value)
    return text


SQL: dict[str, str] = {name: _expand(text) for name, text in _TEMPLATES.items()}
