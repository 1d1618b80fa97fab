"""``python -m credhelper``: the same as the ``credhelper`` command."""

from .cli import main

main()
