"""Mock-sensor mode: a deterministic simulated store that drives the agent's real code.

:mod:`agent.mock.world` decides who is where and when (the same for every mock agent of a
deployment, from the seed and the wall clock); :mod:`agent.mock.simulator` turns that into what
the sensors would produce: probe lines written into a pseudo-terminal the real serial reader
reads, and PIR/door pins driven through gpiozero's MockFactory.
"""
