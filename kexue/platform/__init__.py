"""The platform: the ``kexue`` command, the LightningCLI per task, loggers, the error boundary and the callbacks
that keep a run safe. Tasks and blocks never import from here except :mod:`kexue.platform.figures`."""
