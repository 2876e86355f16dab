"""Default task configs and trainer/logger presets (YAML), installed as ``kexue.conf``."""
