"""``python -m backend.cli`` is ``xiaoche``."""

from backend.cli import main

main()
