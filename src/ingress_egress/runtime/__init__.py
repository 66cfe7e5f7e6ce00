"""The running service's small parts, each taking what it reads as arguments.

* ``bus``: ``BusConnection``, the bus started with retries, and why it is not up;
* ``heartbeat``: ``LoopHeartbeat``, the event loop's lateness (``/livez``, a metric);
* ``readiness``: ``Readiness``, the reasons ``/readyz`` answers 503;
* ``debug``: ``DebugSnapshot``, the ``/_debug/twitch`` document;
* ``channels``: channel changes at runtime, to the cluster or to the pool (chosen once);
* ``view``: ``StatusView``, what the HTTP app reads.

``service.py`` builds them from the components and hands them over; none reaches into
another's internals.
"""
