"""Synthetic data with ground truth: the phantom world (`anatomy`), how its tissues look (`appearance`), how a
scanner takes it (`acquisition`), whole cases (`phantom`) and a lesion inserted into any liver (`tumor`)."""
