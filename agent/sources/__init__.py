"""Where readings come from: serial sniffers, replayed logs and pcaps, GPIO sensors.

Every source hands the rest of the agent the same things (a raw serial line, a parsed probe or a
sensor event), so parsing, presence and publishing never know which hardware produced them.
"""
