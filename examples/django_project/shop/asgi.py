"""The ASGI entry point: Django, with the push router mounted in front at ``/ironmq``.

``PushMount`` hands ``/ironmq/...`` to the router before Django's URL resolver, and runs the
router's lifespan itself (Django refuses the ASGI lifespan): the outbox is flushed at startup
and deferred jobs drain at shutdown, under ``ironpush serve``, uvicorn or any ASGI server.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from ironpush.receiver.mount import PushMount

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django_app = get_asgi_application()  # sets Django up: the router's module may use models

from shop.pushes import router  # noqa: E402 - after Django is set up

application = PushMount(django_app, router=router, path="/ironmq")
