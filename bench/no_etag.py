"""A diagnostic build for the bench only: ``app.py`` with the ETag work of a GET switched off.

    python bench/no_etag.py [app.py's options: --host, --port, --threads, --database]

Not a way to serve images-api, and not a proposed change: ``bench/run.py``
runs it beside ``app.py``, taking turns, to measure what the ETag costs
``GET /v3/image/<id>`` (bench/README.md, "Conditional requests"). It runs
``app.py`` of this checkout as ``python app.py`` would, with the same
arguments, after replacing two names in ``images_api.views``, in this
process only, the package's files untouched:

- ``validated(response, etag)`` returns ``response`` as it is: no ``ETag``, no
  ``Cache-Control``, never a 304;
- ``etag_of(body)`` returns a constant: the body is not hashed.

Everything else is the service as shipped, down to ``show_image`` making the
body's bytes before the response it sends. Conditional requests are wrong on
it by design (``If-None-Match`` is ignored, ``If-Match`` compared with the
constant), so the bench only sends it plain GETs. Exit status 2, with one
line on standard error, when ``images_api.views`` no longer has these names.
"""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# As ``python app.py``: the checkout first on the path, so that the views
# patched here are those app.py serves, not an installed copy's.
sys.path.insert(0, str(ROOT))

from images_api import views  # noqa: E402

PATCHED = ("validated", "etag_of")
CONSTANT_ETAG = "0" * 32


def unvalidated(response, etag):
    """``response`` unchanged: what ``GET`` would send with no validators at all."""
    return response


def constant_etag(body):
    """The same ETag for every ``body``, with no hashing."""
    return CONSTANT_ETAG


def main():
    missing = [name for name in PATCHED if not callable(getattr(views, name, None))]
    if missing:
        # The views changed how they make ETags: this build would measure nothing.
        print(f"no_etag: images_api.views has no {', '.join(missing)}; update bench/no_etag.py", file=sys.stderr)
        sys.exit(2)
    views.validated = unvalidated
    views.etag_of = constant_etag
    # As a script, whatever app.py does to start: it finds the views patched,
    # as they are already imported.
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")


if __name__ == "__main__":
    main()
