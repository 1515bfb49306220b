package brine

// Brine tags (rpyc/core/brine.py; the type tags are rpyc-ng's). 0x07 and 0x09
// (Python 2's long) are unused.
const (
	tagNone           = 0x00
	tagEmptyBytes     = 0x01
	tagEmptyTuple     = 0x02
	tagTrue           = 0x03
	tagFalse          = 0x04
	tagNotImplemented = 0x05
	tagEllipsis       = 0x06
	tagStr            = 0x08 // followed by a bytes item holding UTF-8
	tagBytes1         = 0x0a // 0x0a..0x0d: bytes of length 1..4, raw bytes follow
	tagBytes4         = 0x0d
	tagBytesL1        = 0x0e
	tagBytesL4        = 0x0f
	tagTuple1         = 0x10 // 0x10..0x13: tuples of 1..4 items
	tagTuple4         = 0x13
	tagTupleL1        = 0x14
	tagTupleL4        = 0x15
	tagIntL1          = 0x16 // ASCII decimal
	tagIntL4          = 0x17
	tagFloat          = 0x18
	tagSlice          = 0x19 // followed by a 3-tuple
	tagFrozenSet      = 0x1a // followed by a tuple
	tagComplex        = 0x1b

	// rpyc-ng only: type objects (0x20..0xef stay small ints)
	tagNoneType           = 0x1c
	tagIntType            = 0x1d
	tagBoolType           = 0x1e
	tagFloatType          = 0x1f
	tagBytesType          = 0xf0
	tagStrType            = 0xf1
	tagComplexType        = 0xf2
	tagNotImplementedType = 0xf3 // rpyc-ng 7.0 dumps these two but cannot load them
	tagEllipsisType       = 0xf4

	// Small ints -48..159 are one byte: value + 0x50.
	immIntMin    = -0x30
	immIntMax    = 0x9f
	immIntOffset = 0x50
	tagImmFirst  = immIntMin + immIntOffset // 0x20
	tagImmLast   = immIntMax + immIntOffset // 0xef
)
