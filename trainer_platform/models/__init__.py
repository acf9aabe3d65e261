"""Models: presets and the built-in tiny model."""
