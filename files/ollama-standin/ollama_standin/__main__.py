"""``python -m ollama_standin`` runs the stand-in's command line."""

from ollama_standin.cli import main

raise SystemExit(main())
