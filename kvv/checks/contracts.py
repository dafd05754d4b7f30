"""(being written)"""

CHECKS: list = []
