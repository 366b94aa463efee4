"""``idrules serve``: decisions over HTTP for backends in any language (SPEC §7,
docs/serve.md), on Starlette under uvicorn (the ``serve`` extra).

- :mod:`.app`: the ASGI application factory, :func:`~.app.create_app`;
- :mod:`.handlers`: the endpoints; :mod:`.limits`: body size and strict JSON;
- :mod:`.auth`: the bearer token; :mod:`.accesslog`: one JSON line per request;
- :mod:`.metrics`: Prometheus; :mod:`.openapi`: the document, generated from the routes;
- :mod:`.schemas`: the JSON Schemas of events, decisions and profiles (no framework);
- :mod:`.config`: options, token and engine (no framework); :mod:`.runner`: uvicorn.

Only :mod:`.schemas` and :mod:`.config` import without the extra: the command line reads
them first, and says how to install the rest when it is missing.
"""
