"""``python -m service``: the same as the ``mnist-service`` command."""

from service.launcher.cli import main

main()
