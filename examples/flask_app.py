"""A Flask backend deciding who a widget's caller is, with one idrules engine per process.

Run it with ``flask --app examples/flask_app.py run`` (threaded, as ``flask run`` always is).
``IDRULES_RULES`` names the ruleset (a pack or a file; default ``helpshift``) and
``IDRULES_STORE`` a SQLite file (default: in memory, gone when the process ends). The widget's
session id travels in the ``widget_session`` cookie.
"""

import logging
import os

from flask import Flask, jsonify, request

from idrules import Engine, MemoryStore, SqliteStore

log = logging.getLogger("idrules.decisions")
app = Flask(__name__)
# one engine for the process, built once at start-up and shared by every request thread:
# each decision is one transaction under the store's lock
store = os.environ.get("IDRULES_STORE")
engine = Engine(
    os.environ.get("IDRULES_RULES", "helpshift"),
    SqliteStore(store) if store else MemoryStore(),
)


@app.post("/widget/identify")
def identify():
    body = request.get_json(silent=True)
    # {"identity": {...}} identifies; {"identity": null} is identify(null), a logout; anything
    # else is a bad request, never a logout by accident
    if not isinstance(body, dict) or "identity" not in body:
        return jsonify(error='send a JSON object: {"identity": {...} or null}'), 400
    if body["identity"] is not None and not isinstance(body["identity"], dict):
        return jsonify(error="identity must be an object or null"), 400
    decision = engine.identify(body["identity"], session=request.cookies.get("widget_session"))
    log.info(decision.to_json())  # the audit trail: one line per call
    return jsonify(decision.to_dict())  # the whole decision (docs/decisions.md)


@app.post("/widget/track")
def track():
    body = request.get_json(silent=True)
    session = request.cookies.get("widget_session")
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not session:
        return jsonify(error='send {"name": ...} with a widget_session cookie'), 400
    properties = body.get("properties")
    if properties is not None and not isinstance(properties, dict):
        return jsonify(error="properties must be an object"), 400
    decision = engine.track(body["name"], session=session, properties=properties)
    log.info(decision.to_json())
    return jsonify(decision.to_dict())
