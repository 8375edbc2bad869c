"""committee: the retrieval committee that votes for each query's training thought (``o1e vote`` / ``python -m o1e.committee``)."""
