"""Settings resolution: where ironpush finds the IronMQ address, project id and token.

ironpush reads its settings the way Iron.io's official Python core (iron_core 1.2) does, so an
existing ``iron.json`` or ``IRON_*`` environment keeps working, plus two ironpush additions: the
dev-server switch ``IRONMQ_EMULATOR_HOST`` and the signing keys ``IRONPUSH_SECRET_KEYS``.

Precedence (each layer overrides the one before it):

1. product defaults: host ``mq-aws-us-east-1-1.iron.io``, protocol ``https``, port ``443``,
   api_version ``3``, no path prefix;
2. ``~/.iron.json`` (the user's home directory);
3. ``IRON_*`` environment variables (apply to every Iron.io product);
4. ``IRON_MQ_*`` environment variables (IronMQ only);
5. ``./iron.json`` in the process's current working directory (like iron_core, not the
   directory of the script);
6. the file passed as ``config_file=`` (it must exist);
7. ``IRONMQ_EMULATOR_HOST``, when set (see below);
8. keyword arguments, e.g. ``IronMQ(project_id=..., token=...)``.

Settings: ``host``, ``protocol`` (``https``/``http``), ``port``, ``api_version`` (must be 3),
``project_id``, ``token``, ``keystone``, ``path_prefix``, ``cloud``. A project id is required,
and a token or complete ``keystone`` credentials (``{"server", "tenant", "username",
"password"}``, used instead of a token).

Files (``~/.iron.json``, ``./iron.json``, ``config_file``) are JSON objects. Top-level keys apply
to every Iron.io product; keys inside a nested ``"iron_mq"`` object override them for IronMQ::

    {"token": "...", "project_id": "...", "iron_mq": {"host": "mq-aws-eu-west-1-1.iron.io"}}

Other keys (other products' sections) are ignored. ``null`` and ``""`` mean "not given", except
``"path_prefix": ""`` which means "no prefix". A missing home or local file is skipped. A
``~/.iron.json`` that exists but cannot be read (permissions, a directory, not UTF-8) is logged
as a warning and skipped: it often belongs to another tool or user. A local or explicit file
that cannot be read, and any file that is not valid JSON, is a
:class:`~ironpush._errors.ConfigError` naming the file (its contents are never echoed: they
hold tokens).

Environment variables (blank values count as unset):

- ``IRON_HOST``, ``IRON_PROTOCOL``, ``IRON_PORT`` (integer), ``IRON_API_VERSION`` (integer),
  ``IRON_PROJECT_ID``, ``IRON_TOKEN``, ``IRON_KEYSTONE`` (a JSON object), ``IRON_PATH_PREFIX``,
  ``IRON_CLOUD``; and the same names with ``IRON_MQ_`` instead of ``IRON_``, which win;
- ``IRONMQ_EMULATOR_HOST``: the dev-server switch;
- ``IRONPUSH_SECRET_KEYS``: comma-separated signing keys for push secrets and ack tokens,
  oldest first and newest last (itsdangerous' order: the last key signs, all keys verify).
  A key shorter than 32 bytes is accepted with a logged warning (``ironpush keygen`` makes
  one of the right size).

:data:`ENV_VARS` lists them all. A value that cannot be converted (``IRON_PORT=abc``) is a
``ConfigError`` naming the variable.

``cloud`` is a URL ``scheme://host[:port][/prefix]`` that sets protocol, host, port (default 443
for https, 80 for http) and path prefix at once. Layers apply in order: a layer's ``cloud``
expands into those four settings *at that layer*, and inside one layer (or one file section)
explicit ``host``/``protocol``/``port``/``path_prefix`` beat that layer's ``cloud``. So
``IRON_CLOUD=http://a:8080/p`` followed by ``IRON_MQ_HOST=b`` gives ``http://b:8080/p``, and a
later layer's plain ``host`` replaces only the host of an earlier ``cloud``. (iron_core applies
``cloud`` once at the very end, so a ``cloud`` from any layer beat a ``host`` from any layer;
ironpush keeps the documented "later layer wins" rule instead.)

Dev-server switch: when ``IRONMQ_EMULATOR_HOST`` is set (``127.0.0.1:8080``, ``localhost:8080``
or a URL such as ``http://127.0.0.1:8080/prefix``), protocol, host, port and path prefix from
every file and ``IRON_*`` variable are replaced by that address (plain ``http`` unless the URL
says ``https``), and ``project_id``/``token`` default to ``"dev"``/``"dev"`` when nothing else
set them. Keyword arguments still win: ``IronMQ(cloud=...)`` or ``IronMQ(host=...)`` in code
ignores the switch altogether, while ``port=``/``protocol=``/``path_prefix=`` adjust the
emulator address. ``Settings.emulator`` is ``True`` when the switch is in effect.

Unknown keyword arguments raise ``ConfigError`` (not ``TypeError``), like every other
configuration mistake, so one ``except IronPushError`` catches them. Errors about a keyword
argument name it as ``keyword argument cloud=``; a tool that takes the values from elsewhere
(the CLI's ``--cloud``) passes ``labels={"cloud": "--cloud", ...}`` to name them its way.

Example::

    from ironpush._config import load_settings

    settings = load_settings(project_id="5a1b...", token="...")
    settings.base_url   # 'https://mq-aws-us-east-1-1.iron.io/3/projects/5a1b...'
"""

from __future__ import annotations

# What the rest of ironpush imports from here (``X as X``: re-exported on purpose).
from .files import HOME_FILE as HOME_FILE
from .files import LOCAL_FILE as LOCAL_FILE
from .files import PRODUCT_SECTION as PRODUCT_SECTION
from .keys import MIN_KEY_BYTES as MIN_KEY_BYTES
from .keys import warn_short_keys as warn_short_keys
from .resolver import load_settings as load_settings
from .settings import DEFAULTS as DEFAULTS
from .settings import EMULATOR_ENV as EMULATOR_ENV
from .settings import ENV_PREFIXES as ENV_PREFIXES
from .settings import ENV_VARS as ENV_VARS
from .settings import KEYS as KEYS
from .settings import SECRET_KEYS_ENV as SECRET_KEYS_ENV
from .settings import Keystone as Keystone
from .settings import Settings as Settings
