"""rpyc's own ThreadedServer(SlaveService) on a free loopback port; prints the port."""
import sys

from rpyc.core.service import SlaveService
from rpyc.utils.server import ThreadedServer

server = ThreadedServer(SlaveService, hostname="127.0.0.1", port=0,
                        protocol_config={"sync_request_timeout": 60})
print(server.port, flush=True)
server.start()
