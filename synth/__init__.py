"""synth: candidate thoughts from an expert LLM: `o1e synth prepare` (training rows) and `o1e synth run`."""
