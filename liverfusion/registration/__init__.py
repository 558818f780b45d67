"""Stage 2, alignment: every input registered to the reference (rigid Mattes MI, then a liver-focused B-spline
with a fold check and a fallback)."""
