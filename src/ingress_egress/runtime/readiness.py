"""Why the service is not ready (``/readyz``, the ``ingress.ready`` metric)."""

from __future__ import annotations

from ingress_egress.cluster import ClusterCoordinator
from ingress_egress.credentials import CredentialsProvider
from ingress_egress.egress.runner import EgressRunner
from ingress_egress.pipeline import Pipeline
from ingress_egress.runtime.bus import BusConnection
from ingress_egress.sources.base import ChatSource


class Readiness:
    def __init__(
        self,
        bus: BusConnection,
        pipeline: Pipeline,
        credentials: CredentialsProvider | None,
        cluster: ClusterCoordinator | None,
        source: ChatSource,
        egress: EgressRunner | None = None,
    ) -> None:
        self.bus = bus
        self.pipeline = pipeline
        self.credentials = credentials
        self.cluster = cluster
        self.source = source
        self.egress = egress

    def reasons(self) -> list[str]:
        """Empty when ready; else one line per problem, the most basic first."""
        reasons = self.bus.readiness()
        spool = self.pipeline.spool
        if spool is not None and not spool.healthy:
            reasons.append(
                f"spool degraded ({spool.last_error}): unacknowledged envelopes are held in "
                "memory only, a restart would lose them"
            )
        if self.credentials is not None and not self.credentials.healthy:
            status = self.credentials.status()
            reasons.append(f"credentials {status.get('state')}: {status.get('reason')}")
        if self.cluster is not None:
            reasons.extend(self.cluster.readiness())
        reasons.extend(self.source.readiness())
        if self.egress is not None:
            reasons.extend(self.egress.readiness())
        return reasons
