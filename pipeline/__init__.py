"""The stages chained into one resumable pipeline (``o1e run``, ``o1e demo``): it sits above the stages,
which never import each other."""
