"""Cluster mode: several instances read every channel twice, coordinated through a store.

``assignment`` (who reads what: rendezvous hashing), ``store`` (the store's interface),
``nats_store`` / ``firestore_store`` (the engines), ``coordinator`` (one member's loop).
"""

from ingress_egress.cluster.coordinator import ClusterConfig, ClusterCoordinator, WantedChange
from ingress_egress.cluster.store import CoordinationStore, StoreUnavailable

__all__ = [
    "ClusterConfig",
    "ClusterCoordinator",
    "CoordinationStore",
    "StoreUnavailable",
    "WantedChange",
]
