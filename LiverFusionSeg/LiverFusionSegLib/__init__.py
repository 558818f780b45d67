"""LiverFusionSeg's Qt-free code: geometry conversion, role detection, the background job and the logic.

Kept apart from LiverFusionSeg.py (which needs Slicer's Qt and ScriptedLoadableModule) so that batch
scripts and pytest, with slicer-core's MRML only, can import and test it.
"""
