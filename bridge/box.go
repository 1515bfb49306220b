package bridge

import (
	"fmt"
	"reflect"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// box turns a Go value into an RPyC boxed value: (label, value).
func (c *Conn) box(v any) (any, error) {
	switch v := v.(type) {
	case *Ref:
		if v.conn == c {
			if v.state.obj != nil {
				return brine.Tuple{int64(wire.LabelLocalRef), v}, nil
			}
			return brine.Tuple{int64(wire.LabelLocalRef), v.state.idPack}, nil
		}
		return nil, fmt.Errorf("bridge: a Ref of another connection cannot be passed here")
	case brine.Tuple:
		if brine.IsDumpable(v) {
			return brine.Tuple{int64(wire.LabelValue), v}, nil
		}
		items := make(brine.Tuple, len(v))
		for i, x := range v {
			b, err := c.box(x)
			if err != nil {
				return nil, err
			}
			items[i] = b
		}
		return brine.Tuple{int64(wire.LabelTuple), items}, nil
	}
	if brine.IsDumpable(v) {
		return brine.Tuple{int64(wire.LabelValue), v}, nil
	}
	if c.cfg.ByValue {
		if pv, ok, err := plainValue(v); ok || err != nil {
			if err != nil {
				return nil, err
			}
			return brine.Tuple{int64(wire.LabelValue), pv}, nil
		}
	}
	namePack := "builtins.object"
	if reflect.TypeOf(v).Kind() == reflect.Func {
		namePack = "builtins.function"
	}
	return brine.Tuple{int64(wire.LabelRemoteRef), c.objects.add(v, namePack)}, nil
}

// plainValue converts slices and maps for the by-value extension (pybridge workers
// only): []T becomes a list ([]any), map[K]V a dict.
func plainValue(v any) (any, bool, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return nil, false, nil
		}
		out := make([]any, rv.Len())
		for i := range out {
			x, err := plainItem(rv.Index(i).Interface())
			if err != nil {
				return nil, true, err
			}
			out[i] = x
		}
		return out, true, nil
	case reflect.Map:
		out := make(map[any]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			x, err := plainItem(it.Value().Interface())
			if err != nil {
				return nil, true, err
			}
			out[it.Key().Interface()] = x
		}
		return out, true, nil
	}
	return nil, false, nil
}

func plainItem(v any) (any, error) {
	if brine.IsDumpable(v) {
		return v, nil
	}
	if pv, ok, err := plainValue(v); ok {
		return pv, err
	}
	return nil, fmt.Errorf("bridge: %T cannot travel by value", v)
}

// unbox turns a boxed value from the peer into a Go value: a brine value, or a *Ref.
func (c *Conn) unbox(b any) (any, error) {
	t, ok := b.(brine.Tuple)
	if !ok || len(t) != 2 {
		return nil, &ProtocolError{Msg: fmt.Sprintf("bad boxed value %v", b)}
	}
	label, _ := t[0].(int64)
	switch wire.Label(label) {
	case wire.LabelValue:
		return t[1], nil
	case wire.LabelTuple:
		items, ok := t[1].(brine.Tuple)
		if !ok {
			return nil, &ProtocolError{Msg: "TUPLE label without a tuple"}
		}
		out := make(brine.Tuple, len(items))
		for i, x := range items {
			v, err := c.unbox(x)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case wire.LabelLocalRef:
		return c.objects.get(t[1])
	case wire.LabelRemoteRef:
		if r, ok := t[1].(*Ref); ok && r.conn == c {
			return r, nil // a local peer's object, made a Ref already
		}
		return c.refFor(t[1])
	}
	return nil, &ProtocolError{Msg: fmt.Sprintf("unknown box label %d", label)}
}
