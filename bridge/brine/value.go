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
//	int, str, …     Type (rpyc-ng only: the type objects NoneType, int, bool,
//	                float, bytes, str, complex, NotImplementedType, ellipsis)
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

// Type is one of the Python type objects rpyc-ng's brine carries by value (TypeInt,
// TypeStr, …; rpyc 5.x and 6.x have no such tags and pass types by reference). Compare
// with ==; the zero Type is no type and does not encode.
type Type struct{ tag byte }

// The type objects rpyc-ng's brine has tags for. rpyc-ng 7.0 dumps all nine but cannot
// load the last two (NotImplementedType, ellipsis): never send those to it.
var (
	TypeNone           = Type{tagNoneType}
	TypeInt            = Type{tagIntType}
	TypeBool           = Type{tagBoolType}
	TypeFloat          = Type{tagFloatType}
	TypeBytes          = Type{tagBytesType}
	TypeStr            = Type{tagStrType}
	TypeComplex        = Type{tagComplexType}
	TypeNotImplemented = Type{tagNotImplementedType}
	TypeEllipsis       = Type{tagEllipsisType}
)

var typeNames = map[byte]string{
	tagNoneType: "NoneType", tagIntType: "int", tagBoolType: "bool", tagFloatType: "float",
	tagBytesType: "bytes", tagStrType: "str", tagComplexType: "complex",
	tagNotImplementedType: "NotImplementedType", tagEllipsisType: "ellipsis",
}

// String is the type's Python name (type.__name__), e.g. "int", "NoneType".
func (t Type) String() string {
	if n, ok := typeNames[t.tag]; ok {
		return n
	}
	return "<no type>"
}

// Valid reports whether t is one of the Type values above (not the zero Type).
func (t Type) Valid() bool {
	_, ok := typeNames[t.tag]
	return ok
}

// TypeNamed returns the Type whose Python name is name.
func TypeNamed(name string) (Type, bool) {
	for tag, n := range typeNames {
		if n == name {
			return Type{tag}, true
		}
	}
	return Type{}, false
}

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

// Raw is one value already encoded: AppendDump writes its bytes as they are (a body
// encoded elsewhere, e.g. from another runtime's objects). Load never returns it.
type Raw []byte
