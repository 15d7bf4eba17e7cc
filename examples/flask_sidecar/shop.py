"""A Flask shop: a WSGI app with its own pages and its own SQLite database.

It knows nothing about IronMQ. ``pushes.py`` receives the pushes beside it and calls into
this module's code (inside the app context) to save orders.
"""

from __future__ import annotations

import os
import sqlite3

from flask import Flask, g, jsonify
from flask.typing import ResponseReturnValue

app = Flask(__name__)
app.config["DATABASE"] = os.environ.get("SHOP_DATABASE", "shop.db")

SCHEMA = """CREATE TABLE IF NOT EXISTS orders (
    number INTEGER PRIMARY KEY, total INTEGER NOT NULL, invoiced INTEGER NOT NULL DEFAULT 0
)"""


def db() -> sqlite3.Connection:
    """This app context's connection (the web workers and the push handlers share the file)."""
    if "db" not in g:
        g.db = sqlite3.connect(app.config["DATABASE"], timeout=20)
        g.db.execute(SCHEMA)
    connection: sqlite3.Connection = g.db
    return connection


@app.teardown_appcontext
def close_db(exc: BaseException | None) -> None:
    connection = g.pop("db", None)
    if connection is not None:
        connection.close()


def save_order(number: int, total: int) -> None:
    # An upsert keyed on the order number: a handler re-run after a crash changes nothing.
    with db() as connection:
        connection.execute(
            "INSERT INTO orders (number, total) VALUES (?, ?) "
            "ON CONFLICT (number) DO UPDATE SET total = excluded.total",
            (number, total),
        )


def mark_invoiced(number: int) -> None:
    with db() as connection:
        connection.execute("UPDATE orders SET invoiced = 1 WHERE number = ?", (number,))


@app.get("/")
def home() -> ResponseReturnValue:
    return "flask shop"


@app.get("/orders")
def orders() -> ResponseReturnValue:
    rows = db().execute("SELECT number, total, invoiced FROM orders ORDER BY number")
    return jsonify([{"number": n, "total": t, "invoiced": bool(i)} for n, t, i in rows])
