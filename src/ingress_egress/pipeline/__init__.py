"""Envelopes from a source to a bus: build, queue, publish with pipelined acks and retries."""

from ingress_egress.pipeline.pipeline import Pipeline

__all__ = ["Pipeline"]
