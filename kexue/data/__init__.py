"""The data layer: readers of users' files (:mod:`kexue.data.readers`), files inside installed packages and the
corpora embedded in them (:mod:`kexue.data.embedded`), spectra formats (:mod:`kexue.data.spectra`), and the
DataModule base and samplers every task's DataModule builds on (:mod:`kexue.data.datamodule`)."""
