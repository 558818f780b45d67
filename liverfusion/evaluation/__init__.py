"""Scoring: overlap, distance and detection metrics (`metrics`) and held-out evaluation of a model on case folders
(`held_out`: `liverfusion evaluate --dataset`, and the paired resampling behind the benchmarks' intervals)."""
