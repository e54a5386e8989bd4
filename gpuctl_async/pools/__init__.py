"""Resource pools, nodes and node labels: what the caches say about nodes, and node writes.

A pool is the set of nodes labelled ``runwhere.ai/pool=<name>``; nodes without that label form
the implicit pool ``default`` (the one jobs without a pool are placed in). A pool's description
is stored on each member node as the annotation ``runwhere.ai/pool-description``. There is no
other pool object: a named pool exists while at least one node carries its label.
"""
