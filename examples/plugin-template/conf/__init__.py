"""kexue_digits.conf"""
