"""LightningModules of the built-in tasks (installed as ``kexue.lightning_modules``)."""
