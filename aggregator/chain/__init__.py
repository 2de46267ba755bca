"""Chain analytics: many stores' shipped visits, one view (docs/CHAIN.md).

Stores write partitioned JSON lines (:mod:`aggregator.shipping`, layout in :mod:`.layout`);
``floorwalker-chain`` runs the Flink SQL files in ``sql/`` over them and serves the results.
"""
