"""Names and push settings shared by the fault run's receiver app and its harness."""

QUEUE_NOW = "fault-now"
QUEUE_LATER = "fault-later"
SUBSCRIBER = "fault-receiver"
ERROR_QUEUE = "fault-errors"
# Enough tries that a receiver down for a second or two never exhausts them.
RETRIES = 40
RETRIES_DELAY = 0.5
