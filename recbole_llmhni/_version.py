"""The package version (one place; ``recbole_llmhni.__version__`` re-exports it)."""
__version__ = "0.1.0"
