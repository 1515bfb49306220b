package bridge

import (
	"fmt"
	"math/big"
)

// TypeError is returned by As when a result is not of the Go type asked for.
type TypeError struct {
	Want string // the Go type asked for
	Got  any    // what the peer returned
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("bridge: want a %s, the peer returned %s", e.Want, describe(e.Got))
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case *Ref:
		return "an object " + v.String()
	}
	return fmt.Sprintf("%T %v", v, v)
}

// As converts a call's result to T, passing its error through: the type assertion every
// result needs, with a *TypeError saying what came instead of a panic.
//
//	r, err := bridge.As[float64](math.CallAttr(ctx, "sqrt", 2.0))
//	mod, err := bridge.As[*bridge.Ref](conn.Eval(ctx, "os"))
//
// Numbers convert between Go's kinds where no value is lost: a Python int (int64)
// becomes int, int32, uint64 … when it fits, or float64; a big int (*big.Int) becomes
// int64 when it fits.
func As[T any](v any, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	if t, ok := v.(T); ok {
		return t, nil
	}
	if t, ok := convertNumber[T](v); ok {
		return t, nil
	}
	return zero, &TypeError{Want: fmt.Sprintf("%T", zero), Got: v}
}

func convertNumber[T any](v any) (T, bool) {
	var zero T
	var i int64
	switch n := v.(type) {
	case int64:
		i = n
	case *big.Int:
		if !n.IsInt64() {
			return zero, false
		}
		i = n.Int64()
	default:
		return zero, false
	}
	var out any
	switch any(zero).(type) {
	case int:
		out = int(i)
	case int64:
		out = i
	case int32:
		if int64(int32(i)) != i {
			return zero, false
		}
		out = int32(i)
	case uint64:
		if i < 0 {
			return zero, false
		}
		out = uint64(i)
	case uint:
		if i < 0 {
			return zero, false
		}
		out = uint(i)
	case float64:
		if i > 1<<53 || i < -(1<<53) {
			return zero, false
		}
		out = float64(i)
	default:
		return zero, false
	}
	return out.(T), true
}
