package bridge

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pybridge/pybridge/bridge/brine"
)

type account struct {
	Owner   string
	Balance int64
	secret  string
}

func (a *account) Deposit(n int64) int64           { a.Balance += n; return a.Balance }
func (a *account) Split(s string) (string, string) { h, t, _ := strings.Cut(s, " "); return h, t }
func (a *account) Sum(xs ...int32) int64 {
	var t int64
	for _, x := range xs {
		t += int64(x)
	}
	return t
}

// What a peer (Python, here another Go Conn) can do with a Go value handed to it:
// exported methods and fields by their Go names, setattr on a struct pointer, dir;
// and the type errors Python expects when the arguments do not fit.
func TestGoValuesServedToPeer(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		ctx := testCtx(t)
		acct := &account{Owner: "ada", secret: "x"}
		a, b, _, _ := connPair(t, acct)
		root, err := b.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := root.Attr(ctx, "Owner"); err != nil || v != "ada" {
			t.Errorf("root.Owner = %v, %v", v, err)
		}
		if v, err := root.CallAttr(ctx, "Deposit", int64(5)); err != nil || v != int64(5) {
			t.Errorf("root.Deposit(5) = %v, %v", v, err)
		}
		// a bound method fetched as an attribute is a callable of its own
		dep, err := root.Attr(ctx, "Deposit")
		if err != nil {
			t.Fatal(err)
		}
		if v, err := dep.(*Ref).Call(ctx, int64(2)); err != nil || v != int64(7) {
			t.Errorf("root.Deposit then call = %v, %v", v, err)
		}
		if err := root.SetAttr(ctx, "Owner", "grace"); err != nil {
			t.Fatal(err)
		}
		if v, _ := root.Attr(ctx, "Owner"); v != "grace" {
			t.Errorf("after setattr, Owner = %v", v)
		}
		if v, err := root.CallAttr(ctx, "Split", "a b c"); err != nil || !deepEqual(v, brine.Tuple{"a", "b c"}) {
			t.Errorf("two results = %v, %v (want a tuple)", v, err)
		}
		if v, err := root.CallAttr(ctx, "Sum", int64(1), int64(2), int64(3)); err != nil || v != int64(6) {
			t.Errorf("variadic = %v, %v", v, err)
		}
		if names, err := root.Dir(ctx); err != nil || !slices.Equal(names, []string{"Balance", "Deposit", "Owner", "Split", "Sum"}) {
			t.Errorf("dir = %v, %v", names, err)
		}

		var re *RemoteError
		for _, c := range []struct {
			what string
			call func() error
			typ  string
		}{
			{"unexported field", func() error { _, err := root.Attr(ctx, "secret"); return err }, "AttributeError"},
			{"missing attribute", func() error { _, err := root.Attr(ctx, "Nope"); return err }, "AttributeError"},
			{"float for an int", func() error { _, err := root.CallAttr(ctx, "Deposit", 1.5); return err }, "TypeError"},
			{"int32 overflow", func() error { _, err := root.CallAttr(ctx, "Sum", int64(1)<<40); return err }, "TypeError"},
			{"too few arguments", func() error { _, err := root.CallAttr(ctx, "Deposit"); return err }, "TypeError"},
			{"keyword arguments", func() error { _, err := root.CallAttr(ctx, "Deposit", Kwargs{"n": int64(1)}); return err }, "TypeError"},
			{"setattr of a method", func() error { return root.SetAttr(ctx, "Deposit", int64(1)) }, "AttributeError"},
			{"setattr with a wrong type", func() error { return root.SetAttr(ctx, "Balance", "lots") }, "TypeError"},
			{"delattr", func() error { return root.DelAttr(ctx, "Owner") }, "AttributeError"},
		} {
			if err := c.call(); !errors.As(err, &re) || re.Type != c.typ {
				t.Errorf("%s: %v, want %s", c.what, err, c.typ)
			}
		}
		if acct.Balance != 7 || acct.secret != "x" {
			t.Errorf("account after the failures: %+v", acct)
		}

		// when the connection ends (the peer's CLOSE, or the stream) the table empties
		if a.objects.len() == 0 {
			t.Fatal("the peer holds no Go objects before closing")
		}
		b.Close()
		<-a.Done()
		if n := a.objects.len(); n != 0 {
			t.Errorf("after CLOSE, %d Go objects still held", n)
		}
	})
}
