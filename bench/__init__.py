"""Benchmarks: NLU accuracy and speed against Rasa's default pipeline (bench.nlu)."""
