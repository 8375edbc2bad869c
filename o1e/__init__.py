"""o1e: shared spine of the O1 Embedder framework (config, storage, schemas, retrieval building blocks)."""

__version__ = "0.1.0"
