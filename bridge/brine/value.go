package brine

import "math/big"

// The Go value model. Brine carries only immutable values; decoding yields exactly
// these Go types:
//
//	Python          Go
//	None            nil
//	bool            bool
//	int             int64, or *big.Int when outside the int64 range
//	float           float64
//	complex         complex128
//	str             string
//	bytes           []byte
//	tuple           Tuple
//	frozenset       FrozenSet
//	slice           Slice
//	Ellipsis        Ellipsis
//	NotImplemented  NotImplemented
//
// Encoding also accepts the other Go integer kinds (int, int32, uint64, …), float32,
// complex64 and *big.Int of any size; it never accepts a value outside this set.

// Tuple is a Python tuple.
type Tuple []any

// FrozenSet is a Python frozenset, its items in the order they were received.
type FrozenSet []any

// Slice is a Python slice object; each bound is nil or a brine value.
type Slice struct{ Start, Stop, Step any }

type ellipsisType struct{}

func (ellipsisType) String() string { return "Ellipsis" }

type notImplementedType struct{}

func (notImplementedType) String() string { return "NotImplemented" }

// Ellipsis is Python's Ellipsis (...). Compare with ==.
var Ellipsis any = ellipsisType{}

// NotImplemented is Python's NotImplemented. Compare with ==.
var NotImplemented any = notImplementedType{}

var (
	minInt64 = big.NewInt(-1 << 63)
	maxInt64 = big.NewInt(1<<63 - 1)
)

// NormalizeInt returns i as an int64 when it fits, else i itself: the canonical form
// decoders produce.
func NormalizeInt(i *big.Int) any {
	if i.Cmp(minInt64) >= 0 && i.Cmp(maxInt64) <= 0 {
		return i.Int64()
	}
	return i
}
