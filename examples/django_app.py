"""A Django view deciding who a widget's caller is: a whole Django project in one file.

Run it with ``python examples/django_app.py runserver`` (threaded, as runserver always is),
or under any WSGI server, which finds ``application`` here (``gunicorn --chdir examples
django_app``). ``IDRULES_RULES`` names the ruleset (a pack or a file; default ``helpshift``)
and ``IDRULES_STORE`` a SQLite file (default: in memory, gone when the process ends). The
widget's session id travels in the ``widget_session`` cookie.
"""

import json
import logging
import os
import secrets
import sys
from typing import Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST

from idrules import Engine, MemoryStore, SqliteStore

settings.configure(
    ROOT_URLCONF=__name__,  # this file's urlpatterns, below
    ALLOWED_HOSTS=os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(","),
    # nothing is signed here (no Django sessions, logins or CSRF tokens: the widget's calls
    # carry none), so a key of the process's own will do until something is
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
    MIDDLEWARE=[],
)
log = logging.getLogger("idrules.decisions")
# one engine for the process, built once at start-up and shared by every request thread:
# each decision is one transaction under the store's lock
store = os.environ.get("IDRULES_STORE")
engine = Engine(
    os.environ.get("IDRULES_RULES", "helpshift"),
    SqliteStore(store) if store else MemoryStore(),
)


def json_object(request: HttpRequest) -> dict[str, Any] | None:
    """The request's body if it is a JSON object, else None."""
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@require_POST
def identify(request: HttpRequest) -> JsonResponse:
    body = json_object(request)
    # {"identity": {...}} identifies; {"identity": null} is identify(null), a logout; anything
    # else is a bad request, never a logout by accident
    if body is None or "identity" not in body:
        return JsonResponse(
            {"error": 'send a JSON object: {"identity": {...} or null}'}, status=400
        )
    if body["identity"] is not None and not isinstance(body["identity"], dict):
        return JsonResponse({"error": "identity must be an object or null"}, status=400)
    decision = engine.identify(body["identity"], session=request.COOKIES.get("widget_session"))
    log.info(decision.to_json())  # the audit trail: one line per call
    return JsonResponse(decision.to_dict())  # the whole decision (docs/decisions.md)


@require_POST
def track(request: HttpRequest) -> JsonResponse:
    body = json_object(request)
    session = request.COOKIES.get("widget_session")
    if body is None or not isinstance(body.get("name"), str) or not session:
        return JsonResponse(
            {"error": 'send {"name": ...} with a widget_session cookie'}, status=400
        )
    properties = body.get("properties")
    if properties is not None and not isinstance(properties, dict):
        return JsonResponse({"error": "properties must be an object"}, status=400)
    decision = engine.track(body["name"], session=session, properties=properties)
    log.info(decision.to_json())
    return JsonResponse(decision.to_dict())


urlpatterns = [path("widget/identify", identify), path("widget/track", track)]
application = get_wsgi_application()

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
