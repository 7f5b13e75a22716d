"""The run engine behind ``CoastyRunnable`` and the tools: create, follow, pause, finish one run.

``settings`` (the fields the front ends share), ``request`` (settings + call input -> one
validated ``RunRequest``), ``progress`` (what this process delivered), ``session`` (the
bookkeeping of one followed run and its typed outcome), ``ops`` (what the decisions ask the
drivers to do), ``steps`` and ``durable_steps`` (the decisions of the stream and durable
waits, as generators that do no I/O) and ``drivers`` (the sync and async loops that carry
the operations out: the only sync/async twins above the client).
"""
