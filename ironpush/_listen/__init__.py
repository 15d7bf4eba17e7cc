"""``ironpush listen``: relay a push queue's real pushes to a service on this machine.

For each push queue, a private pull queue (the *relay queue*, named
``<queue>--listen-<host>-<id>``) is created and added to the push queue as one **extra**
``ironmq:///<relay queue>`` subscriber (IronMQ's add-subscriber call: existing subscribers are
never read back, replaced or removed). IronMQ then copies every message into the relay queue,
which is long-polled from here (``reserve`` with ``wait``: no public URL, no tunnel), and each
message is POSTed to the local service as IronMQ's pusher would (:mod:`._relay`).

**The ack path.** A local service that answers 202 acknowledges later; ironpush's router acks
a v3 push with the API delete on the push queue, which IronMQ refuses (404: the message id is
the relay queue's). The forwarded ``Iron-Subscriber-Message-Url`` therefore points at a small
endpoint this process serves (:mod:`._acks`), and the client, when IronMQ refuses a v3 ack
with 403/404 and the push's message URL is on another origin than the API, sends the same
``DELETE`` there (:func:`ironpush.client._operations.push.acknowledge`). The endpoint deletes
the relayed message with its current reservation. So a ``Defer`` job, an external worker's
``/_ack`` and ``PushAcks`` all settle relayed pushes with the service's configuration unchanged.

Modules: :mod:`._names` (what is temporary and whose), :mod:`._settings` (the options),
:mod:`._plan` (what to create, refusals), :mod:`._setup` (create, remove, ``--cleanup``),
:mod:`._locks` (which listeners of this machine are running), :mod:`._relay` (the engine),
:mod:`._held` (a held message's relay reservation), :mod:`._acks` (the ack endpoint),
:mod:`._events` and :mod:`._reports` (the line per push, error reports), :mod:`._session` (one
run, from signals to teardown).
"""
