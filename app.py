"""Serve images-api on this machine with waitress, from a checkout (README: A session with curl).

    python app.py [--host 127.0.0.1] [--port 8080] [--threads 4] [--database URL] [--version]

The same as ``images-api serve`` (``images_api.serve``), for a laptop and a
clone: one file to run.
"""

from images_api.serve import run

if __name__ == "__main__":
    run(prog_name="app.py")
