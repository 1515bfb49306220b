//go:build cgo

package cpython

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/pybridge/pybridge/bridge/brine"
)

// goldenBrine is every value of package brine's golden files: bytes rpyc's own brine
// (5.3.1, and rpyc-ng's for the type tags) wrote.
func goldenBrine(t testing.TB) [][]byte {
	var out [][]byte
	for _, name := range []string{"golden.json", "golden_ng.json"} {
		raw, err := os.ReadFile("../../../bridge/brine/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var g struct{ Vectors []struct{ Hex string } }
		if err := json.Unmarshal(raw, &g); err != nil {
			t.Fatal(err)
		}
		for _, v := range g.Vectors {
			b, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// sameValue reports whether a and b are of one type and repr (NaN included); ok false
// when the repr cannot be taken (an int past Python's digit limit).
func sameValue(t testing.TB, a, b Object) (same, ok bool) {
	f := eval(t, "lambda a, b: type(a) is type(b) and repr(a) == repr(b)")
	defer f.DecRef()
	r, err := f.Call([]Object{a, b}, Object{})
	if err != nil {
		if exc, isExc := err.(*Exception); isExc {
			exc.Release()
		}
		return false, false
	}
	defer r.DecRef()
	same, err = r.Truth()
	return same, err == nil
}

// Every value rpyc's brine writes loads to the object the general way (package brine,
// then the Encoder) builds, and dumps back to the very same bytes.
func TestBrineGolden(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	vectors := goldenBrine(t)
	if len(vectors) < 50 {
		t.Fatalf("only %d golden vectors", len(vectors))
	}
	for _, data := range vectors {
		o, ok := LoadBrine(data, brine.DefaultLimits)
		if !ok {
			t.Errorf("%x: refused", data)
			continue
		}
		v, err := brine.Load(data)
		if err != nil {
			t.Fatalf("%x: %v", data, err)
		}
		want, err := (&Encoder{}).Object(v)
		if err != nil {
			t.Fatalf("%x: %v", data, err)
		}
		if same, ok := sameValue(t, o, want); ok && !same {
			t.Errorf("%x: loaded %s, the general way %s", data, repr(o), repr(want))
		}
		want.DecRef()
		back, ok := DumpBrine(o)
		if !ok || !bytes.Equal(back, data) && !sameSet(t, o, back) {
			t.Errorf("%x dumped back as %x (%v)", data, back, ok)
		}
		o.DecRef()
	}
}

// sameSet: a frozenset's items are dumped in its iteration order, which for strs
// changes from process to process (hash randomization); loaded back, it is equal.
func sameSet(t testing.TB, o Object, dumped []byte) bool {
	back, ok := LoadBrine(dumped, brine.DefaultLimits)
	if !ok {
		return false
	}
	defer back.DecRef()
	eq := eval(t, "lambda a, b: a == b and 'frozenset' in repr(a)")
	defer eq.DecRef()
	r, err := eq.Call([]Object{o, back}, Object{})
	if err != nil {
		return false
	}
	defer r.DecRef()
	same, _ := r.Truth()
	return same
}

func repr(o Object) string {
	s, err := o.Repr()
	if err != nil {
		return "?"
	}
	return s
}

// Malformed input and input over a limit are refused with no Python exception left
// behind, so the general way can decide (and report) instead.
func TestBrineLoadRefuses(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	lim := brine.Limits{MaxDepth: 4, MaxItems: 10, MaxIntDigits: 20}
	for _, c := range []struct {
		name string
		data string // hex
	}{
		{"empty", ""},
		{"truncated tuple", "12 51 52"},
		{"trailing bytes", "51 52"},
		{"unknown tag", "07"},
		{"str not UTF-8", "08 0a ff"},
		{"str of no bytes", "08 51"},
		{"bytes longer than the input", "0e 05 41 41"},
		{"tuple count beyond the input", "15 7f ff ff ff 50"},
		{"length over 2^31", "0f ff ff ff ff"},
		{"int not decimal", "16 02 31 61"},
		{"int of only a sign", "16 01 2d"},
		{"nested beyond MaxDepth", "10 10 10 10 10 50"},
		{"more than MaxItems", "15 00 00 00 0b 50 50 50 50 50 50 50 50 50 50 50"},
		{"int beyond MaxIntDigits", "16 16 " + strings.Repeat("31 ", 22)},
		{"positive int one digit beyond MaxIntDigits", "16 15 " + strings.Repeat("31 ", 21)},
		{"slice of two", "19 11 50 50"},
		{"frozenset of no tuple", "1a 50"},
		{"frozenset of an unhashable item", "1a 10 19 12 50 50 50"},
	} {
		data, err := hex.DecodeString(strings.ReplaceAll(c.data, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := LoadBrine(data, lim); ok {
			// a slice is hashable from Python 3.12: then the last case loads
			if c.name == "frozenset of an unhashable item" {
				o.DecRef()
				continue
			}
			t.Errorf("%s: loaded %s", c.name, repr(o))
			o.DecRef()
		}
		if PyErrOccurred() {
			t.Errorf("%s: a Python exception was left set", c.name)
		}
	}
	// without a depth limit the C stack still bounds nesting
	deep := append(bytes.Repeat([]byte{0x10}, 100000), 0x50)
	if o, ok := LoadBrine(deep, brine.Limits{}); ok {
		o.DecRef()
		t.Error("100000 levels loaded")
	}
}

// Only brine's exact value types are dumped: anything else is refused (it travels by
// reference, or the general way reports it), with no exception left set.
func TestBrineDumpRefuses(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	for _, src := range []string{
		"[1, 2]", "{1: 2}", "{1}", "(1, [2])", "type('I', (int,), {})(3)", "object()",
		"frozenset({(1, object())})", "slice(1, [2])", "type",
	} {
		o := eval(t, src)
		if b, ok := DumpBrine(o); ok {
			t.Errorf("%s dumped as %x", src, b)
		}
		o.DecRef()
		if PyErrOccurred() {
			t.Errorf("%s: a Python exception was left set", src)
		}
	}
	// and what it dumps, rpyc's brine loads back equal
	o := eval(t, "(10**30, -10**30, 2**63, -2**63, -49, 160, 'é'*300, b'x'*70000, (1,)*300, 1.5, 2j, slice(None, 5, -1), frozenset({1}), int, ...)")
	defer o.DecRef()
	b, ok := DumpBrine(o)
	if !ok {
		t.Fatal("refused")
	}
	v, err := brine.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	want, err := brine.Dump(v)
	if err != nil || !bytes.Equal(want, b) {
		t.Errorf("package brine dumps it as %d bytes (%v), brine.c as %d", len(want), err, len(b))
	}
}

// FuzzBrineLoad: whatever brine.c loads, package brine loads too, to an equal value;
// what package brine loads and Python can hold, brine.c loads too.
func FuzzBrineLoad(f *testing.F) {
	for _, data := range goldenBrine(f) {
		f.Add(data)
	}
	start(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		Enter()
		defer Leave()
		lim := brine.Limits{MaxDepth: 32, MaxItems: 1 << 12, MaxIntDigits: 400}
		o, ok := LoadBrine(data, lim)
		if PyErrOccurred() {
			t.Fatal("a Python exception was left set")
		}
		v, err := brine.LoadLimited(data, lim)
		if ok {
			defer o.DecRef()
			if err != nil {
				t.Fatalf("brine.c loaded %s, package brine: %v", repr(o), err)
			}
		}
		if err != nil {
			return
		}
		want, werr := (&Encoder{}).Object(v)
		if werr != nil {
			if exc, isExc := werr.(*Exception); isExc {
				exc.Release()
			}
			if ok {
				t.Fatalf("brine.c loaded %s, the Encoder cannot: %v", repr(o), werr)
			}
			return
		}
		defer want.DecRef()
		if !ok {
			if !bytes.Contains(data, []byte{'+'}) { // Go's ParseInt takes "+1", brine never writes it
				t.Fatalf("brine.c refused what loads as %s", repr(want))
			}
			return
		}
		if same, known := sameValue(t, o, want); known && !same {
			t.Fatalf("brine.c loaded %s, package brine %s", repr(o), repr(want))
		}
	})
}
