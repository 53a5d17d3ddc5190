"""``python -m vector_search`` runs the service's command line."""

from vector_search.cli import main

raise SystemExit(main())
