package chain

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestStateRootDependsOnContentsOnly applies random sets and deletes in
// random orders and checks that the root always equals that of a state
// built afresh from the same contents, that deleting what was added
// restores the earlier root, and that an unchanged value changes nothing.
func TestStateRootDependsOnContentsOnly(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		s := NewMemState()
		model := map[string]string{}
		for step := 0; step < 400; step++ {
			k := fmt.Sprintf("k%d", r.IntN(120))
			if r.IntN(4) == 0 {
				s.Delete([]byte(k))
				delete(model, k)
			} else {
				v := fmt.Sprintf("v%d", r.IntN(5))
				s.Set([]byte(k), []byte(v))
				model[k] = v
			}
			if step%37 == 0 {
				if got, want := s.Root(), fresh(model, r).Root(); got != want {
					t.Fatalf("seed %d step %d: root differs from a fresh state of the same contents", seed, step)
				}
			}
		}
		before := s.Root()
		s.Set([]byte("extra"), []byte("x"))
		if s.Root() == before {
			t.Fatal("adding a key left the root unchanged")
		}
		s.Delete([]byte("extra"))
		if s.Root() != before {
			t.Fatal("deleting the added key did not restore the root")
		}
		for k, v := range model {
			s.Set([]byte(k), []byte(v))
			if got, ok := s.Get([]byte(k)); !ok || string(got) != v {
				t.Fatalf("get %s", k)
			}
		}
		if s.Root() != before {
			t.Fatal("rewriting equal values changed the root")
		}
	}
	if NewMemState().Root() != [32]byte{} {
		t.Fatal("empty root is not zero")
	}
}

// fresh builds a state from contents, inserting in a random order.
func fresh(model map[string]string, r *rand.Rand) *MemState {
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	s := NewMemState()
	for _, k := range keys {
		s.Set([]byte(k), []byte(model[k]))
	}
	return s
}

// TestStateUpdateIsLogarithmic checks the cost of one update in a state of
// 100,000 keys: the nodes rehashed are those on one path, about log2(n),
// not the whole state.
func TestStateUpdateIsLogarithmic(t *testing.T) {
	s := NewMemState()
	for i := 0; i < 100_000; i++ {
		s.Set([]byte(fmt.Sprint("member/", i)), []byte("agency"))
	}
	s.Root()
	s.hashed = 0
	s.Set([]byte("member/77"), []byte("auditor"))
	s.Root()
	if s.hashed > 40 {
		t.Fatalf("one update rehashed %d nodes in a state of 100,000 keys", s.hashed)
	}
	t.Logf("one update rehashed %d nodes", s.hashed)
}

func BenchmarkStateSet(b *testing.B) {
	s := NewMemState()
	for i := 0; i < 100_000; i++ {
		s.Set([]byte(fmt.Sprint("k", i)), []byte("v"))
	}
	s.Root()
	i := 0
	for b.Loop() {
		s.Set([]byte(fmt.Sprint("k", i%100_000)), []byte(fmt.Sprint(i)))
		s.Root()
		i++
	}
}

// TestCloneIsIndependent checks that a clone and its original share
// nothing observable: writes to either leave the other's contents and
// root as they were, and each root still equals that of a fresh state of
// the same contents.
func TestCloneIsIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 0))
	base := NewMemState()
	model := map[string]string{}
	for i := 0; i < 500; i++ {
		k, v := fmt.Sprint("k", i), fmt.Sprint("v", i)
		base.Set([]byte(k), []byte(v))
		model[k] = v
	}
	before := base.Root()
	clone := base.Clone().(*MemState)
	cloneModel := map[string]string{}
	for k, v := range model {
		cloneModel[k] = v
	}
	for i := 0; i < 200; i++ {
		k := fmt.Sprint("k", r.IntN(700))
		if i%3 == 0 {
			clone.Delete([]byte(k))
			delete(cloneModel, k)
		} else {
			clone.Set([]byte(k), []byte("changed"))
			cloneModel[k] = "changed"
		}
	}
	if base.Root() != before || base.Len() != len(model) {
		t.Fatal("writes to a clone changed the original")
	}
	for k, v := range model {
		if got, ok := base.Get([]byte(k)); !ok || string(got) != v {
			t.Fatalf("original lost %s", k)
		}
	}
	if clone.Root() != fresh(cloneModel, r).Root() || clone.Len() != len(cloneModel) {
		t.Fatal("the clone's root is not that of its contents")
	}
	base.Set([]byte("only-in-base"), []byte("x"))
	if _, ok := clone.Get([]byte("only-in-base")); ok {
		t.Fatal("a write to the original showed in the clone")
	}
}
