"""train: joint fine-tuning of an O1 model on Ray Train + DeepSpeed (``o1e train`` / ``python -m o1e.train``)."""
