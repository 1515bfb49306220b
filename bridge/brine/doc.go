// Package brine is rpyc's value codec, byte for byte: the encoding of the immutable
// values RPyC passes by value (None, bools, ints of any size, floats, complex numbers,
// str, bytes, and tuples, frozensets and slices of those), and rpyc-ng's tags for a
// few type objects (int, str, …: Type). Everything else travels by reference and never
// reaches brine.
//
// value.go maps Python's values onto Go's. Dump and AppendDump encode as rpyc's
// brine.dump does; Load and LoadLimited decode one value, refusing malformed input and
// anything past Limits (depth, item count, int digits) with a *DecodeError, so a peer
// cannot exhaust memory or stack. testdata/golden.json holds vectors made by the real
// rpyc (scripts/gen_brine_golden.py) and is checked in both directions;
// testdata/golden_ng.json does the same with rpyc-ng's brine.
package brine
