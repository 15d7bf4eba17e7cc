"""The producer of the cross-process trace test: posts one message inside a span of its own
(OTLP export) and prints the message id."""

from __future__ import annotations

import os
import sys

from opentelemetry import trace
from otlp_setup import configure

from ironpush import IronMQ

provider = configure("producer")
with trace.get_tracer("shop").start_as_current_span("checkout"), IronMQ() as mq:
    [message_id] = mq.queue(os.environ["TRACE_TEST_QUEUE"]).post('{"order": 1}')
provider.shutdown()
sys.stdout.write(message_id + "\n")
