"""LiverFusion core: multimodal liver tumour segmentation and characterisation.

Plain Python (numpy, SimpleITK, torch, MONAI); never imports slicer, qt or ctk, so the same code
serves the Slicer modules, `Slicer --python-script` batches and the `liverfusion` command line.

The Python API is two functions (imported on first use, so that `import liverfusion` stays light):

    liverfusion.segment(inputs, out_dir, ...)  read, segment and write one case (what `liverfusion segment` does)
    liverfusion.run_case(images, ...)          segment SimpleITK images held in memory (what Slicer calls)

One subpackage per stage of the pipeline: `io` (inputs and outputs on disk) -> `registration` -> `preprocessing`
-> `models` + `networks` -> `inference` (pipeline, post-processing) -> `reports`; beside them `synthesis` (phantoms,
synthetic tumours), `training`, `evaluation`, `apps` (KU Leuven's models, the CT to MRI translator) and `cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "run_case", "segment"]

if TYPE_CHECKING:
    from .inference.pipeline import run_case, segment


def __getattr__(name: str):
    """`segment` and `run_case` from `inference.pipeline`, imported when first asked for (they need torch)."""
    if name in ("segment", "run_case"):
        from .inference import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "segment", "run_case"})
