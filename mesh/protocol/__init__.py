"""What the client and the nodes say to each other on the exec channels.

* :mod:`mesh.protocol.messages` -- every exec message as a named record, one
  codec per channel, and :class:`~mesh.protocol.messages.ProtocolViolation`.
* :mod:`mesh.protocol.framing` -- channel paths and frame batching.

Addresses are written and read by :mod:`mesh.addresses`.
"""
