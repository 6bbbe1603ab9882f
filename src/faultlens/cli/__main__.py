"""``python -m faultlens.cli``: the same as the ``faultlens`` command."""

from faultlens.cli.main import main

main()
