"""Task ``word_discovery``: unsupervised lexicon building (n-gram cohesion, decisive cut) and segmentation."""

from kexue.registry import Task

TASK = Task(
    name="word_discovery",
    summary="Unsupervised word discovery (minimum entropy / PMI) on People's Daily 1998-01, scored as segmentation",
    module="kexue.lightning_modules.word_discovery:WordDiscoverer",
    datamodule="kexue.datamodules.word_discovery:WordDiscoveryDataModule",
    config="kexue.conf:word_discovery.yaml",
    post="https://kexue.fm/archives/5476",
    metric="test/f1",
    links=(("data.tags", "model.tags"),),
)
# Task word_discovery: see `kexue run word_discovery --help`; the lexicon is exported as lexicon.txt (jieba format).
# Posts: kexue.fm/archives/5476 (minimum entropy lexicon), /5597 (nlp zero), /3491 (boundary entropy).
