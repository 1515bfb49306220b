"""RPyC's protocol constants (rpyc.core.consts) and the worker protocol's frame kinds."""

MSG_REQUEST, MSG_REPLY, MSG_EXCEPTION = 1, 2, 3

LABEL_VALUE, LABEL_TUPLE, LABEL_LOCAL_REF, LABEL_REMOTE_REF = 1, 2, 3, 4

HANDLE_PING = 1
HANDLE_CLOSE = 2
HANDLE_GETROOT = 3
HANDLE_GETATTR = 4
HANDLE_DELATTR = 5
HANDLE_SETATTR = 6
HANDLE_CALL = 7
HANDLE_CALLATTR = 8
HANDLE_REPR = 9
HANDLE_STR = 10
HANDLE_CMP = 11
HANDLE_HASH = 12
HANDLE_DIR = 13
HANDLE_PICKLE = 14
HANDLE_DEL = 15
HANDLE_INSPECT = 16
HANDLE_BUFFITER = 17
HANDLE_OLDSLICING = 18
HANDLE_CTXEXIT = 19
HANDLE_INSTANCECHECK = 20
# rpyc-ng only (pybridge.ng)
HANDLE_BOOL = 21
HANDLE_SUBCLASSCHECK = 22
HANDLE_TYPE = 23

EXC_STOP_ITERATION = 1

# the kinds of the messages the C channel returns for a request it served (serve.c): the
# result it could not send, the exception it raised, the reply it could not send
SERVED_RESULT, SERVED_RAISED, SERVED_REPLY = -1, -2, -3

# worker protocol frame kinds (docs/worker-protocol.md)
KIND_OPEN, KIND_CLOSE, KIND_PING, KIND_PONG, KIND_SHUTDOWN, KIND_HELLO = 16, 18, 20, 21, 22, 23
