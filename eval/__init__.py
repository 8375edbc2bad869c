"""eval: sharded retrieval evaluation on BEIR-format datasets (``o1e eval`` / ``python -m o1e.eval``)."""
