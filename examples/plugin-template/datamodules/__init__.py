"""kexue_digits.datamodules"""
