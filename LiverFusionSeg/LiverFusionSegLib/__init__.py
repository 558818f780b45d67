"""LiverFusionSeg's Qt-free code: geometry conversion, role detection, the background job and the logic.

Kept apart from LiverFusionSeg.py (which needs Slicer's Qt and ScriptedLoadableModule) so that batch
scripts and pytest, with slicer-core's MRML only, can import and test it.
"""

import sys
from pathlib import Path

# From a source checkout (this folder added to Slicer's module paths) the core package `liverfusion` sits
# two levels up; an installed extension puts it beside the modules, already on the path.
_CHECKOUT = Path(__file__).resolve().parents[2]
if (_CHECKOUT / "liverfusion" / "__init__.py").is_file() and str(_CHECKOUT) not in sys.path:
    sys.path.append(str(_CHECKOUT))
