"""The HTTP API (Flask, served by waitress)."""
