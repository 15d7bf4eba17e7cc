"""Names and push settings shared by the fault run's receiver app and its harness.

**Retry settings: IronMQ's defaults, with the retry clock divided by 5.** IronMQ's defaults are
``retries=3`` and ``retries_delay=60`` s: a message has 4 tries over 4 minutes. We keep the 4
tries (the count is what each fault burns; it does not scale) and divide the delay by 5:
``retries_delay=12`` s, a 48 s budget per message. Nothing else is scaled or tuned: the
receiver keeps its defaults (``claim_lease`` 10 s, the outbox's backoff, ``max_deferred`` sized
below) and the dev server keeps IronMQ's 10 s push timeout. 5 is the largest divisor that keeps
the order of the real defaults, lease < retries_delay: a dead host's claims expire before the
next try (at /10, 6 s < 10 s, every kill cost the messages in flight a second try answered
"in progress", a regime IronMQ's defaults never produce). A crashed host's claims must be taken
over, failed acks retried, a store or dev-server restart healed, within those 4 tries.
"""

QUEUE_NOW = "fault-now"  # handled at once (200)
QUEUE_LATER = "fault-later"  # deferred job (202, then an ack through the outbox)
QUEUE_FLAKY = "fault-flaky"  # fails on its first run anywhere (500), succeeds when retried
QUEUES = (QUEUE_NOW, QUEUE_LATER, QUEUE_FLAKY)
ROUTES = {"/now": QUEUE_NOW, "/later": QUEUE_LATER, "/flaky": QUEUE_FLAKY}
SUBSCRIBER = "fault-receiver"
ERROR_QUEUE = "fault-errors"
TIME_SCALE = 5
RETRIES = 3  # IronMQ's default
RETRIES_DELAY = 60 / TIME_SCALE  # IronMQ's default (60 s), scaled: 12 s
# Sizing, as the README's "Scaling out" advises: the instances together take at least as many
# deferred jobs as the pusher has pushes in flight (the dev server's default: 256), so a burst
# of 2,000 posted at once is not answered "busy" until its tries run out.
MAX_DEFERRED_TOTAL = 300
