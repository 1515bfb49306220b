package brine

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"os"
	"reflect"
	"testing"
)

type described struct {
	T string          `json:"t"`
	V json.RawMessage `json:"v"`
}

type golden struct {
	Rpyc    string `json:"rpyc"`
	Vectors []struct {
		Hex   string    `json:"hex"`
		Value described `json:"value"`
	} `json:"vectors"`
}

// goldenFiles: rpyc 5.x/6.x's brine, and rpyc-ng's (which adds type tags)
var goldenFiles = []string{"testdata/golden.json", "testdata/golden_ng.json"}

func loadGolden(t testing.TB, name string) golden {
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Vectors) < 50 {
		t.Fatalf("only %d golden vectors", len(g.Vectors))
	}
	return g
}

// rebuild turns the generator's tagged description back into a Go value of the model.
func rebuild(t testing.TB, d described) any {
	t.Helper()
	str := func() string {
		var s string
		if err := json.Unmarshal(d.V, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	list := func() Tuple {
		var items []described
		if err := json.Unmarshal(d.V, &items); err != nil {
			t.Fatal(err)
		}
		out := Tuple{}
		for _, it := range items {
			out = append(out, rebuild(t, it))
		}
		return out
	}
	unhex := func() []byte {
		b, err := hex.DecodeString(str())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	switch d.T {
	case "none":
		return nil
	case "ellipsis":
		return Ellipsis
	case "notimplemented":
		return NotImplemented
	case "bool":
		return string(d.V) == "true"
	case "int":
		i, ok := new(big.Int).SetString(str(), 10)
		if !ok {
			t.Fatalf("bad int %s", d.V)
		}
		return NormalizeInt(i)
	case "float":
		b := unhex()
		return math.Float64frombits(beUint64(b))
	case "complex":
		b := unhex()
		return complex(math.Float64frombits(beUint64(b)), math.Float64frombits(beUint64(b[8:])))
	case "str":
		return str()
	case "bytes":
		return unhex()
	case "tuple":
		return list()
	case "frozenset":
		return FrozenSet(list())
	case "slice":
		l := list()
		return Slice{Start: l[0], Stop: l[1], Step: l[2]}
	case "type":
		typ, ok := TypeNamed(str())
		if !ok {
			t.Fatalf("unknown type %s", d.V)
		}
		return typ
	}
	t.Fatalf("unknown description %q", d.T)
	return nil
}

func beUint64(b []byte) uint64 {
	var u uint64
	for _, c := range b[:8] {
		u = u<<8 | uint64(c)
	}
	return u
}

// equal compares decoded values, treating *big.Int by value.
func equal(a, b any) bool {
	if x, ok := a.(*big.Int); ok {
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	}
	return reflect.DeepEqual(a, b)
}

func TestGoldenVectorsBothWays(t *testing.T) {
	for _, name := range goldenFiles {
		t.Run(name, func(t *testing.T) { checkGolden(t, loadGolden(t, name)) })
	}
}

func checkGolden(t *testing.T, g golden) {
	for _, vec := range g.Vectors {
		want, err := hex.DecodeString(vec.Hex)
		if err != nil {
			t.Fatal(err)
		}
		v := rebuild(t, vec.Value)
		got, err := Dump(v)
		if err != nil {
			t.Errorf("Dump(%v): %v", vec.Value, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Dump(%s %.60s) = %x, rpyc %s gives %x", vec.Value.T, vec.Value.V, got, g.Rpyc, want)
		}
		back, err := Load(want)
		if err != nil {
			t.Errorf("Load(%x): %v", want, err)
			continue
		}
		if !equal(back, v) {
			t.Errorf("Load(%x) = %#v, want %#v", want, back, v)
		}
	}
}

func TestDumpAcceptsOtherGoNumbers(t *testing.T) {
	for _, c := range []struct {
		in   any
		want any
	}{
		{int(7), int64(7)}, {int32(-200), int64(-200)}, {uint8(255), int64(255)},
		{uint64(math.MaxUint64), new(big.Int).SetUint64(math.MaxUint64)},
		{float32(1.5), 1.5}, {complex64(2i), complex128(2i)},
		{big.NewInt(5), int64(5)},
	} {
		b, err := Dump(c.in)
		if err != nil {
			t.Fatalf("Dump(%T): %v", c.in, err)
		}
		v, err := Load(b)
		if err != nil || !equal(v, c.want) {
			t.Errorf("Load(Dump(%T %v)) = %#v, %v; want %#v", c.in, c.in, v, err, c.want)
		}
	}
}

func TestTypes(t *testing.T) {
	for _, typ := range []Type{TypeNone, TypeInt, TypeBool, TypeFloat, TypeBytes, TypeStr, TypeComplex, TypeNotImplemented, TypeEllipsis} {
		if got, ok := TypeNamed(typ.String()); !ok || got != typ {
			t.Errorf("TypeNamed(%q) = %v, %v", typ.String(), got, ok)
		}
		if !IsDumpable(Tuple{typ}) {
			t.Errorf("IsDumpable(%v) = false", typ)
		}
	}
	if _, ok := TypeNamed("list"); ok {
		t.Error("TypeNamed(list) found a type brine has no tag for")
	}
}

func TestDumpRejectsReferenceTypes(t *testing.T) {
	for _, v := range []any{[]any{1}, map[string]any{}, struct{}{}, Tuple{1, []int{2}}, Type{}} {
		_, err := Dump(v)
		var ute *UnsupportedTypeError
		if !errors.As(err, &ute) {
			t.Errorf("Dump(%T) = %v, want *UnsupportedTypeError", v, err)
		}
		if IsDumpable(v) {
			t.Errorf("IsDumpable(%T) = true", v)
		}
	}
	if !IsDumpable(Tuple{1, "a", FrozenSet{Slice{1, nil, nil}}}) {
		t.Error("IsDumpable rejects a dumpable nested tuple")
	}
}

func TestLoadRejectsMalformedAndOversized(t *testing.T) {
	deep := bytes.Repeat([]byte{tagTuple1}, DefaultLimits.MaxDepth+1)
	deep = append(deep, tagNone)
	manyItems := []byte{tagTupleL4, 0x7f, 0xff, 0xff, 0xff}
	hugeInt := append([]byte{tagIntL4, 0, 0, 0x27, 0x10}, bytes.Repeat([]byte("9"), 10000)...)
	for name, in := range map[string][]byte{
		"empty":         {},
		"unknown tag":   {0x07},
		"truncated":     {tagBytesL1, 10, 'a'},
		"trailing":      {tagNone, tagNone},
		"str not bytes": {tagStr, tagNone},
		"bad utf8":      {tagStr, tagBytes1, 0xff},
		"too deep":      deep,
		"item count":    manyItems,
		"huge int":      hugeInt,
		"bad int":       {tagIntL1, 2, '1', 'x'},
		"slice of 2":    {tagSlice, tagTuple1 + 1, tagNone, tagNone},
	} {
		_, err := Load(in)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: Load = %v, want *DecodeError", name, err)
		}
	}
}

// MaxIntDigits counts digits, not the sign: CPython refuses str -> int conversions of
// more than 4300 digits, so a 4301-digit positive int must fail here as over the limit,
// not later in Python.
func TestMaxIntDigitsCountsDigitsNotTheSign(t *testing.T) {
	lim := Limits{MaxIntDigits: 5}
	intOf := func(s string) []byte { return append([]byte{tagIntL1, byte(len(s))}, s...) }
	for _, s := range []string{"123456789012345678901", "-123456789012345678901"} {
		l := lim
		l.MaxIntDigits = 20
		if _, err := LoadLimited(intOf(s), l); err == nil {
			t.Errorf("%s (%d characters) loaded within 20 digits", s, len(s))
		}
	}
	for _, s := range []string{"12345", "-12345", "1234567890123456789", "-1234567890123456789"} {
		l := lim
		l.MaxIntDigits = 19
		if _, err := LoadLimited(intOf(s), l); err != nil {
			t.Errorf("%s within 19 digits: %v", s, err)
		}
	}
	_, err := LoadLimited(intOf("123456"), lim)
	var de *DecodeError
	if !errors.As(err, &de) || !de.Limit {
		t.Errorf("6 digits within 5: %v, want a limit error", err)
	}
}

func FuzzLoad(f *testing.F) {
	for _, name := range goldenFiles {
		for _, vec := range loadGolden(f, name).Vectors {
			b, _ := hex.DecodeString(vec.Hex)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := Load(in)
		if err != nil {
			return
		}
		out, err := Dump(v)
		if err != nil {
			t.Fatalf("decoded %#v but cannot dump it: %v", v, err)
		}
		again, err := Load(out)
		if err != nil {
			t.Fatalf("re-load of %x: %v", out, err)
		}
		if !reflect.DeepEqual(normalizeNaN(again), normalizeNaN(v)) && !bigEqual(again, v) {
			t.Fatalf("round trip changed %#v into %#v", v, again)
		}
	})
}

func bigEqual(a, b any) bool {
	x, ok1 := a.(*big.Int)
	y, ok2 := b.(*big.Int)
	return ok1 && ok2 && x.Cmp(y) == 0
}

// normalizeNaN makes NaNs comparable for the fuzzer's equality check.
func normalizeNaN(v any) any {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) {
			return "NaN"
		}
	case complex128:
		if math.IsNaN(real(v)) || math.IsNaN(imag(v)) {
			return "NaN"
		}
	case Tuple:
		out := make(Tuple, len(v))
		for i, x := range v {
			out[i] = normalizeNaN(x)
		}
		return out
	case FrozenSet:
		return FrozenSet(normalizeNaN(Tuple(v)).(Tuple))
	case Slice:
		return Slice{normalizeNaN(v.Start), normalizeNaN(v.Stop), normalizeNaN(v.Step)}
	}
	return v
}

var benchBody = Tuple{int64(8), Tuple{int64(3), Tuple{"builtins.module", int64(140234), int64(140235)}},
	"sqrt", Tuple{Tuple{int64(1), 2.0}}, Tuple{}}

func BenchmarkDump(b *testing.B) {
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf, _ = AppendDump(buf[:0], benchBody)
	}
}

func BenchmarkLoad(b *testing.B) {
	raw, _ := Dump(benchBody)
	for b.Loop() {
		if _, err := Load(raw); err != nil {
			b.Fatal(err)
		}
	}
}
