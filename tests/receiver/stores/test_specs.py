"""Choosing a store: ``open_store`` specs, ``IRONPUSH_STORE``, reprs without credentials, and
the one-line pip hint when an extra is missing. (The contract itself: tests/receiver/stores.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ironpush._errors import ConfigError
from ironpush.receiver.stores import (
    STORE_ENV,
    MemoryStore,
    PostgresStore,
    RedisStore,
    SQLiteStore,
    open_store,
    store_from_env,
)


def test_specs_name_their_engines(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    by_path = open_store(tmp_path / "a.db")
    assert isinstance(by_path, SQLiteStore)
    assert by_path.path == tmp_path / "a.db"
    plain = open_store(str(tmp_path / "b.db"))
    assert isinstance(plain, SQLiteStore)
    absolute = open_store(f"sqlite:///{tmp_path}/c.db")
    assert isinstance(absolute, SQLiteStore)
    assert absolute.path == tmp_path / "c.db"
    relative = open_store("sqlite:///rel.db")
    assert isinstance(relative, SQLiteStore)
    assert relative.path == Path("rel.db")
    redis_store = open_store("redis://127.0.0.1:6379/2?prefix=orders")
    assert isinstance(redis_store, RedisStore)
    assert (redis_store.url, redis_store.prefix) == ("redis://127.0.0.1:6379/2", "orders")
    pg = open_store("postgres://app@db:5432/app?schema=push&sslmode=disable")
    assert isinstance(pg, PostgresStore)
    assert (pg.dsn, pg.schema) == ("postgres://app@db:5432/app?sslmode=disable", "push")
    store = MemoryStore()
    assert open_store(store) is store


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty store spec"),
        ("   ", "empty store spec"),
        ("mysql://u:hunter22@db/app", "unknown store 'mysql://***@db/app'"),
        ("sqlite://", "sqlite store spec must look like"),
    ],
)
def test_bad_specs_are_one_line_config_errors_without_credentials(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(spec)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert "hunter22" not in text


def test_ironpush_store_names_the_store_and_default_applies_otherwise(tmp_path: Path) -> None:
    env = {STORE_ENV: f"sqlite:///{tmp_path}/env.db"}
    from_env = store_from_env(environ=env)
    assert isinstance(from_env, SQLiteStore)
    assert from_env.path == tmp_path / "env.db"
    assert store_from_env(environ={}) is None
    assert isinstance(store_from_env("memory", environ={STORE_ENV: " "}), MemoryStore)
    assert isinstance(store_from_env(environ={STORE_ENV: "redis://r:6379/0"}), RedisStore)


def test_reprs_and_errors_never_show_passwords() -> None:
    redis_store = RedisStore("redis://:s3cr3t-pass@127.0.0.1:1/0")
    pg = PostgresStore("postgresql://app:s3cr3t-pass@127.0.0.1:1/app")
    assert "s3cr3t" not in repr(redis_store)
    assert "s3cr3t" not in repr(pg)
    assert "***" in repr(redis_store)
    error = redis_store.breaker.trip(OSError("auth s3cr3t-pass refused"))
    assert "s3cr3t-pass" not in str(error)


@pytest.mark.parametrize(
    ("module", "blocked", "hint"),
    [
        ("ironpush.receiver.stores._redis", "hiredis", "pip install 'ironpush[redis]'"),
        ("ironpush.receiver.stores._postgres", "psycopg", "pip install 'ironpush[postgres]'"),
    ],
)
def test_a_missing_extra_fails_at_import_with_the_pip_command(
    module: str, blocked: str, hint: str
) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{blocked!r}] = None\n"  # as if the package were not installed
        "try:\n"
        f"    import {module}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip().endswith(hint)
    assert out.stdout.count("\n") == 1
