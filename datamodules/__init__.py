"""LightningDataModules of the built-in tasks (installed as ``kexue.datamodules``)."""
