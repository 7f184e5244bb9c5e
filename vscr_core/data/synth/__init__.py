"""The synthetic UAV vehicle ReID data set, generated on disk in the UAV-VeID layout.

`render` draws one image (vehicle, camera, light, scene); `write` plans every image from the
seed and writes the tree. Note that `synth.render` is the module; its function is
`synth.render.render`.
"""

from .write import INFO_FILE, SYNTH_PRESETS, UAV_VEID_IDS, generate_dataset, is_complete

__all__ = ["INFO_FILE", "SYNTH_PRESETS", "UAV_VEID_IDS", "generate_dataset", "is_complete"]
