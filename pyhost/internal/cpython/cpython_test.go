//go:build cgo

package cpython

import (
	"context"
	"errors"
	"math/big"
	"os"
	"reflect"
	"sync"
	"testing"

	"github.com/pybridge/pybridge/bridge/brine"
)

func testPython() string {
	if p := os.Getenv("PYBRIDGE_TEST_PYTHON"); p != "" {
		return p
	}
	return "python3"
}

var (
	startOnce sync.Once
	startErr  error
)

func start(t testing.TB) *Interpreter {
	t.Helper()
	startOnce.Do(func() {
		var info Info
		info, startErr = Probe(context.Background(), testPython())
		if startErr == nil {
			_, startErr = Start(info, "import sys\nsys.argv = ['']\n")
		}
	})
	if startErr != nil {
		t.Fatal(startErr)
	}
	return Running()
}

func eval(t testing.TB, src string) Object {
	t.Helper()
	b, err := Import("builtins")
	if err != nil {
		t.Fatal(err)
	}
	defer b.DecRef()
	s, _ := Str(src)
	defer s.DecRef()
	f, err := b.Attr("eval")
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	g, _ := (&Encoder{}).Object(map[string]any{})
	defer g.DecRef()
	o, err := f.Call([]Object{s, g}, Object{})
	if err != nil {
		t.Fatalf("eval %q: %v", src, err)
	}
	return o
}

func TestValuesRoundTrip(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	huge, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	values := []any{
		nil, true, false, int64(0), int64(-1), int64(1 << 62), int64(-1 << 63), huge,
		1.5, complex(1, -2), "", "héllo", []byte{}, []byte{0, 1, 2}, brine.Tuple{},
		brine.Tuple{int64(1), "a", brine.Tuple{nil, 2.5}}, brine.FrozenSet{int64(3)},
		brine.Slice{Start: int64(1), Stop: nil, Step: int64(-1)}, brine.Ellipsis, brine.NotImplemented,
	}
	var enc Encoder
	var dec Decoder
	for _, v := range values {
		o, err := enc.Object(v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		back, err := dec.Value(o)
		o.DecRef()
		if err != nil {
			t.Fatalf("%#v back: %v", v, err)
		}
		if b, ok := v.(*big.Int); ok {
			if back.(*big.Int).Cmp(b) != 0 {
				t.Errorf("%v came back as %v", v, back)
			}
			continue
		}
		if !reflect.DeepEqual(back, v) {
			t.Errorf("%#v came back as %#v", v, back)
		}
	}
}

// rpyc-ng's brine carries a few type objects by value: with Types they convert both
// ways; without it a type object is no value (it travels by reference).
func TestTypeObjects(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	o := eval(t, "(int, str, bytes, bool, float, complex, type(None), type(NotImplemented), type(...))")
	defer o.DecRef()
	if _, err := (&Decoder{}).Value(o); err == nil {
		t.Fatal("a type object converted without Types")
	}
	want := brine.Tuple{brine.TypeInt, brine.TypeStr, brine.TypeBytes, brine.TypeBool, brine.TypeFloat,
		brine.TypeComplex, brine.TypeNone, brine.TypeNotImplemented, brine.TypeEllipsis}
	got, err := (&Decoder{Types: true}).Value(o)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Value = %#v, %v; want %#v", got, err, want)
	}
	back, err := (&Encoder{}).Object(want)
	if err != nil {
		t.Fatal(err)
	}
	defer back.DecRef()
	same := eval(t, "lambda a, b: a == b")
	defer same.DecRef()
	r, err := same.Call([]Object{o, back}, Object{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.DecRef()
	if v, _ := (&Decoder{}).Value(r); v != true {
		t.Fatalf("the type objects came back as other objects")
	}
	l := eval(t, "list")
	defer l.DecRef()
	if _, err := (&Decoder{Types: true}).Value(l); err == nil {
		t.Fatal("list (no brine tag) converted")
	}
}

func TestListsAndDictsByValue(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	o := eval(t, "[1, {'a': (2, 3)}, {4}]")
	defer o.DecRef()
	if _, err := (&Decoder{}).Value(o); err == nil {
		t.Fatal("a list converted without Lists")
	}
	v, err := (&Decoder{Lists: true}).Value(o)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{int64(1), map[string]any{"a": brine.Tuple{int64(2), int64(3)}}, brine.FrozenSet{int64(4)}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %#v", v)
	}
	self := eval(t, "(lambda l: (l.append(l), l)[1])([])")
	defer self.DecRef()
	if _, err := (&Decoder{Lists: true}).Value(self); err == nil {
		t.Fatal("a list holding itself converted")
	}
}

func TestGoFuncCalledFromPython(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	var got any
	f, err := NewFunc(func(args Object) (Object, error) {
		v, err := (&Decoder{}).Value(args)
		if err != nil {
			return Object{}, err
		}
		got = v
		if len(v.(brine.Tuple)) == 0 {
			return Object{}, &Raise{Class: "ValueError", Msg: "no arguments"}
		}
		return (&Encoder{}).Object("ok")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	caller := eval(t, "lambda f: (f(1, 'two'), __import__('traceback'))[0]")
	defer caller.DecRef()
	r, err := caller.Call([]Object{f}, Object{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.GoString()
	r.DecRef()
	if s != "ok" || !reflect.DeepEqual(got, brine.Tuple{int64(1), "two"}) {
		t.Fatalf("returned %q, got %#v", s, got)
	}
	raiser := eval(t, "lambda f: f()")
	defer raiser.DecRef()
	_, err = raiser.Call([]Object{f}, Object{})
	var exc *Exception
	if !errors.As(err, &exc) || exc.Error() != "ValueError: no arguments" {
		t.Fatalf("error %v", err)
	}
	exc.Release()
}

func TestPythonException(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	f := eval(t, "int")
	defer f.DecRef()
	s, _ := Str("x")
	defer s.DecRef()
	_, err := f.Call([]Object{s}, Object{})
	var exc *Exception
	if !errors.As(err, &exc) {
		t.Fatalf("got %v", err)
	}
	defer exc.Release()
	if exc.Error() != "ValueError: invalid literal for int() with base 10: 'x'" || exc.Traceback.IsNil() == false && exc.Value.IsNil() {
		t.Fatalf("got %q", exc.Error())
	}
}

func TestSecondInterpreterRefused(t *testing.T) {
	ip := start(t)
	other := ip.Info()
	other.Executable += "-other"
	_, err := Start(other, "")
	var se *SecondInterpreterError
	if !errors.As(err, &se) {
		t.Fatalf("got %v", err)
	}
	if again, err := Start(ip.Info(), ""); err != nil || again != ip {
		t.Fatalf("same interpreter again: %v %v", again, err)
	}
}

func TestThreadsRunPythonConcurrently(t *testing.T) {
	start(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				Enter()
				o, err := (&Encoder{}).Object(brine.Tuple{int64(i), int64(j)})
				if err == nil {
					_, err = (&Decoder{}).Value(o)
					o.DecRef()
				}
				id := ThreadIdent()
				Leave()
				if err != nil || id == 0 {
					t.Error(err, id)
					return
				}
			}
		}()
	}
	wg.Wait()
}
