"""placeholder: replaced below"""
import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Streaming mode is registered by aggregator.chain.streaming once it lands."""
