"""``python -m images_api``: the ``images-api`` command, for an environment without its script on PATH."""

from .cli import main

main(prog_name="images-api")
