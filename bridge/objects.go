package bridge

import (
	"fmt"
	"sync"

	"github.com/pybridge/pybridge/bridge/brine"
)

// objectTable holds the Go values the peer has references to, keyed by id_pack and
// refcounted: each REMOTE_REF boxing adds one, DEL(count) removes count, Close drops all.
type objectTable struct {
	mu     sync.Mutex
	next   int64
	byID   map[int64]*localObject
	values map[any]int64 // comparable values only, so one value keeps one id
}

type localObject struct {
	value    any
	namePack string
	id       int64
	count    int64
}

func (t *objectTable) add(v any, namePack string) brine.Tuple {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID == nil {
		t.byID, t.values = map[int64]*localObject{}, map[any]int64{}
	}
	key, comparable := comparableKey(v)
	if comparable {
		if id, ok := t.values[key]; ok {
			o := t.byID[id]
			o.count++
			return o.idPack()
		}
	}
	t.next++
	o := &localObject{value: v, namePack: namePack, id: t.next, count: 1}
	t.byID[o.id] = o
	if comparable {
		t.values[key] = o.id
	}
	return o.idPack()
}

// class ids are negative so they never collide with instance ids
func (o *localObject) idPack() brine.Tuple { return brine.Tuple{o.namePack, -o.id, o.id} }

func (t *objectTable) get(idPack any) (any, error) {
	id, err := instanceID(idPack)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.byID[id]
	if !ok {
		return nil, fmt.Errorf("no Go object with id_pack %v (released or never sent)", idPack)
	}
	return o.value, nil
}

func (t *objectTable) decref(idPack any, count int64) {
	id, err := instanceID(idPack)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.byID[id]
	if !ok {
		return
	}
	o.count -= count
	if o.count <= 0 {
		delete(t.byID, id)
		if key, ok := comparableKey(o.value); ok {
			delete(t.values, key)
		}
	}
}

func (t *objectTable) clear() {
	t.mu.Lock()
	t.byID, t.values = nil, nil
	t.mu.Unlock()
}

func (t *objectTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

func instanceID(idPack any) (int64, error) {
	p, ok := idPack.(brine.Tuple)
	if !ok || len(p) != 3 {
		return 0, &ProtocolError{Msg: fmt.Sprintf("bad id_pack %v", idPack)}
	}
	id, ok := p[2].(int64)
	if !ok {
		return 0, &ProtocolError{Msg: fmt.Sprintf("bad id_pack %v", idPack)}
	}
	return id, nil
}

func comparableKey(v any) (key any, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	m := map[any]struct{}{}
	m[v] = struct{}{} // panics for uncomparable values (funcs, slices, maps)
	return v, true
}

// idOf reads the instance id out of a request's boxed arguments, whose first item is
// the Go object (LOCAL_REF to us).
func (t *objectTable) idOf(boxedArgs any) (int64, error) {
	if b, ok := boxedArgs.(brine.Tuple); ok && len(b) == 2 {
		if items, ok := b[1].(brine.Tuple); ok && len(items) > 0 {
			if ref, ok := items[0].(brine.Tuple); ok && len(ref) == 2 {
				return instanceID(ref[1])
			}
		}
	}
	return 0, &ProtocolError{Msg: "request without an object"}
}
