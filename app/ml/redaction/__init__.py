"""Personal data masked in the audio: spoken (from the transcript's word times) and keyed
(keypad tones, from the audio itself), written to a redacted copy of the recording.

    from app.ml.redaction.recording import redact_recording
    result = redact_recording(original, copy_path, transcript, fill=Fill.TONE)
    result.redactions  # [Redaction(type="CARD", start_s=..., end_s=...), ...]

The package itself imports nothing: the spoken-number detection (`spoken`, `numbers`) is
text work the transcript masking shares, and must not pull in the audio decoders.
"""
