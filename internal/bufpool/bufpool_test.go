package bufpool

import "testing"

// A buffer put back is what a later Get of a size it holds returns; small and huge
// sizes are plain allocations.
func TestGetPut(t *testing.T) {
	for _, n := range []int{0, 10, Min, Min + 1, 3 << 20, Max} {
		b := Get(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(b), cap(b))
		}
	}
	b := Get(3 << 20)
	b = append(b, 1, 2, 3)
	Put(b)
	got := Get(3<<20 + 5) // same class (4 MiB)
	if cap(got) != cap(b) || len(got) != 0 {
		t.Logf("a fresh buffer (the pool may drop entries): cap %d", cap(got))
	}
	if cap(got) < 3<<20+5 {
		t.Fatalf("cap %d", cap(got))
	}
	// a foreign buffer of a size between classes serves the class below it
	Put(make([]byte, 0, 3<<20))
	if g := Get(2 << 20); cap(g) < 2<<20 {
		t.Fatalf("cap %d", cap(g))
	}
	if g := Get(Max + 1); cap(g) != Max+1 {
		t.Fatalf("Get(Max+1) cap %d", cap(g))
	}
}
