"""Template kexue plugin: handwritten digits."""
