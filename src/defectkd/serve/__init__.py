"""The PC side of edge streaming: receive results over ZeroMQ, store them, show them on a web page.

Nothing here imports torch (stdlib, pyzmq only; no image is decoded), so the receiver runs wherever pyzmq does.
"""

from defectkd.serve.protocol import MalformedMessage, create_keys, decode, encode
from defectkd.serve.receiver import Receiver, ReceiverError
from defectkd.serve.store import ResultStore, StoreReader

__all__ = ["MalformedMessage", "Receiver", "ReceiverError", "ResultStore", "StoreReader", "create_keys", "decode",
           "encode"]
