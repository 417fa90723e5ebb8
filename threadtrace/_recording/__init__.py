"""Recording: what the primitives observed, turned into OpenTelemetry spans and metrics.

The recorder (spans, the wait histogram, problem counts), the observable
instruments that publish the primitives' own counters, and the contention
profile (who waited where, behind whom).  Only slow paths call in here.
"""
