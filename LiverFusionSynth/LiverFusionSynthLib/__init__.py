"""LiverFusionSynth's Qt-free code (phantoms and synthetic lesions), importable by pytest and batch scripts."""

import LiverFusionSegLib  # noqa: F401  (makes the core package importable from a source checkout)
