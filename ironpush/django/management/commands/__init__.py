"""``python manage.py ironpush_subscribe``."""
