"""A long-lived generation worker: one process keeps engines loaded and answers JSON-line requests on
its pipes, so a host that holds Python's GIL (Slicer's main thread) does not slow generation down.
`python -m sadm.serving` starts it; `protocol` is the wire format both sides share."""
