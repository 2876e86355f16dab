"""kexue_digits.lightning_modules"""
