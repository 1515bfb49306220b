package bridge

import (
	"errors"
	"math/big"
	"testing"
)

func TestAs(t *testing.T) {
	if v, err := As[float64](1.5, nil); err != nil || v != 1.5 {
		t.Errorf("float: %v %v", v, err)
	}
	if v, err := As[int](int64(42), nil); err != nil || v != 42 {
		t.Errorf("int64 as int: %v %v", v, err)
	}
	if v, err := As[float64](int64(3), nil); err != nil || v != 3 {
		t.Errorf("int64 as float64: %v %v", v, err)
	}
	if _, err := As[int32](int64(1<<40), nil); err == nil {
		t.Error("an int64 that does not fit became an int32")
	}
	if _, err := As[uint64](int64(-1), nil); err == nil {
		t.Error("a negative int became a uint64")
	}
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	if _, err := As[int64](huge, nil); err == nil {
		t.Error("a big int that does not fit became an int64")
	}
	var te *TypeError
	if _, err := As[string](int64(1), nil); !errors.As(err, &te) || te.Want != "string" {
		t.Errorf("wrong type: %v", err)
	}
	if _, err := As[*Ref](nil, nil); !errors.As(err, &te) || te.Error() != "bridge: want a *bridge.Ref, the peer returned None" {
		t.Errorf("None as a Ref: %v", err)
	}
	boom := errors.New("boom")
	if _, err := As[int](nil, boom); err != boom {
		t.Errorf("error not passed through: %v", err)
	}
}
