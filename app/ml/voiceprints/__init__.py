"""Voiceprints: an agent's voice learned from their calls, and roles told by voice."""
