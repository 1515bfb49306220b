"""The table of this side's objects the peer holds references to, keyed by id_pack and
refcounted: every REMOTE_REF boxing adds one, DEL(count) removes count, CLOSE drops all.
Keys are rpyc's three-item id_packs; rpyc-ng's fourth item (the object type) is ignored
in lookups."""
import threading

from .idpack import get_id_pack


class ObjectTable:
    def __init__(self):
        self._lock = threading.Lock()
        self._slots = {}  # id_pack -> [obj, count]

    def add(self, obj):
        id_pack = get_id_pack(obj)
        with self._lock:
            slot = self._slots.get(id_pack)
            if slot is None:
                self._slots[id_pack] = [obj, 1]
            else:
                slot[1] += 1
        return id_pack

    def get(self, id_pack):
        if len(id_pack) == 4:
            id_pack = id_pack[:3]
        slot = self._slots.get(id_pack)  # one dict lookup: atomic, no lock needed
        if slot is None:
            raise KeyError(f"no object with id_pack {id_pack!r} (released or never sent)")
        return slot[0]

    def decref(self, id_pack, count=1):
        if len(id_pack) == 4:
            id_pack = id_pack[:3]
        with self._lock:
            slot = self._slots.get(id_pack)
            if slot is None:
                return
            slot[1] -= count
            if slot[1] <= 0:
                del self._slots[id_pack]

    def clear(self):
        with self._lock:
            self._slots.clear()

    def __len__(self):
        return len(self._slots)
