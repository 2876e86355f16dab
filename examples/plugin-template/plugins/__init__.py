"""kexue_digits.plugins"""
